// A command handler in Go: Eddy runs the program once per batch with Lambda's
// event JSON on stdin, and reads Lambda's response JSON from stdout.
//
// It totals the amounts of the batch per user: a Kinesis record's partition
// key is the user and its data JSON such as {"amount": 12.5}; a DynamoDB
// record's NewImage has "user" and "amount". Records that are not sales are
// reported as batch item failures.
//
//	GOOS=wasip1 GOARCH=wasm go build -o go-totals.wasm .
package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
)

type event struct {
	Records []struct {
		Kinesis  *kinesisRecord  `json:"kinesis"`
		Dynamodb *dynamodbRecord `json:"dynamodb"`
	} `json:"Records"`
}

type kinesisRecord struct {
	PartitionKey   string `json:"partitionKey"`
	Data           string `json:"data"`
	SequenceNumber string `json:"sequenceNumber"`
}

type dynamodbRecord struct {
	NewImage       map[string]map[string]any `json:"NewImage"`
	SequenceNumber string                    `json:"SequenceNumber"`
}

type sale struct {
	User   string
	Amount float64
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
	totals := map[string]float64{}
	failures := []failure{}
	for _, record := range in.Records {
		s, id, ok := decode(record.Kinesis, record.Dynamodb)
		if !ok {
			failures = append(failures, failure{id})
			continue
		}
		totals[s.User] += s.Amount
	}
	users := make([]string, 0, len(totals))
	for user := range totals {
		users = append(users, user)
	}
	sort.Strings(users)
	parts := make([]string, 0, len(users))
	for _, user := range users {
		parts = append(parts, fmt.Sprintf("%s=%g", user, totals[user]))
	}
	// stderr goes to the host's log; stdout is the response.
	fmt.Fprintf(os.Stderr, "go: %d records, %d failed; totals %s\n", len(in.Records), len(failures), strings.Join(parts, " "))
	json.NewEncoder(os.Stdout).Encode(map[string]any{"batchItemFailures": failures})
}

// decode reads a record as a sale: Kinesis data is base64 JSON, a DynamoDB
// record's NewImage has attribute values ({"S": ...}, {"N": ...}).
func decode(kinesis *kinesisRecord, dynamodb *dynamodbRecord) (sale, string, bool) {
	switch {
	case kinesis != nil:
		var data struct {
			Amount *float64 `json:"amount"`
		}
		raw, err := base64.StdEncoding.DecodeString(kinesis.Data)
		if err != nil || json.Unmarshal(raw, &data) != nil || data.Amount == nil {
			return sale{}, kinesis.SequenceNumber, false
		}
		return sale{kinesis.PartitionKey, *data.Amount}, kinesis.SequenceNumber, true
	case dynamodb != nil:
		user, _ := dynamodb.NewImage["user"]["S"].(string)
		amount, _ := dynamodb.NewImage["amount"]["N"].(string)
		var value float64
		if _, err := fmt.Sscan(amount, &value); err != nil || user == "" {
			return sale{}, dynamodb.SequenceNumber, false
		}
		return sale{user, value}, dynamodb.SequenceNumber, true
	}
	return sale{}, "", false
}
