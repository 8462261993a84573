// {{name}}: a command handler. Eddy runs it once per batch with Lambda's event
// JSON on stdin and reads the response JSON from stdout; stderr goes to the log.
// Each record's data is an order as JSON, such as {"amount": 12.5}; a record that
// is not one is reported as a batch item failure. Build with `eddy build .`.
package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
)

type event struct {
	Records []struct {
		Kinesis struct {
			Data           string `json:"data"`
			SequenceNumber string `json:"sequenceNumber"`
		} `json:"kinesis"`
	} `json:"Records"`
}

type failure struct {
	ItemIdentifier string `json:"itemIdentifier"`
}

func main() {
	var in event
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fmt.Fprintln(os.Stderr, "bad event:", err)
		os.Exit(1)
	}
	total := 0.0
	failures := []failure{}
	for _, record := range in.Records {
		var order struct {
			Amount *float64 `json:"amount"`
		}
		data, err := base64.StdEncoding.DecodeString(record.Kinesis.Data)
		if err != nil || json.Unmarshal(data, &order) != nil || order.Amount == nil {
			failures = append(failures, failure{record.Kinesis.SequenceNumber})
			continue
		}
		total += *order.Amount
	}
	fmt.Fprintf(os.Stderr, "%s: %d records, %d failed; total %g\n", os.Getenv("AWS_LAMBDA_FUNCTION_NAME"), len(in.Records), len(failures), total)
	json.NewEncoder(os.Stdout).Encode(map[string]any{"batchItemFailures": failures})
}
