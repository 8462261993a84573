module eddy.example/go-totals

go 1.22
