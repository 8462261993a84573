#!/usr/bin/env bash
# Installs the peer benchmark's parts (tests/benches/peers.rs): kinesalite and the
# AWS SDK for JavaScript v3 (node_modules, from package-lock.json), and boto3 (a
# virtualenv in ./venv). Needs Node.js with npm and Python 3 with venv. Not part
# of tests/setup.sh or CI: only the benchmark uses them.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -d node_modules/kinesalite ] || [ ! -d node_modules/@aws-sdk/client-kinesis ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
if ! venv/bin/python -c "import boto3" 2>/dev/null; then
  rm -rf venv
  python3 -m venv venv
  venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
fi
echo "peers installed: kinesalite $(node -p 'require("./node_modules/kinesalite/package.json").version'), @aws-sdk/client-kinesis $(node -p 'require("./node_modules/@aws-sdk/client-kinesis/package.json").version'), boto3 $(venv/bin/python -c 'import boto3; print(boto3.__version__)')"
