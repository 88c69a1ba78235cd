#!/bin/bash
# Written by mlops-cdk (Studio stack): point MLflow clients at this environment's server.
set -eu
parameter='{parameter}'
if ! settings=$(python3 - "$parameter" '{region}' <<'PY'
import json
import shlex
import sys

import boto3

name, region = sys.argv[1:]
value = boto3.client("ssm", region_name=region).get_parameter(Name=name)["Parameter"]["Value"]
settings = json.loads(value)
print("uri=" + shlex.quote(settings["uri"]))
print("secret_arn=" + shlex.quote(settings["secret_arn"]))
PY
); then
  echo "MLflow settings not read from SSM parameter $parameter: MLFLOW_TRACKING_URI not set" >&2
  exit 0
fi
eval "$settings"
startup="$HOME/.ipython/profile_default/startup"
mkdir -p "$startup"
cat > "$startup/00-mlflow-tracking-uri.py" <<PY
import os
os.environ.setdefault("MLFLOW_TRACKING_URI", "$uri")
PY
printf 'export MLFLOW_TRACKING_URI=%q\n' "$uri" > "$HOME/.mlflow-tracking-uri.sh"
if [ -n "$secret_arn" ]; then
  cat >> "$startup/00-mlflow-tracking-uri.py" <<PY
os.environ.setdefault("MLFLOW_CREDENTIALS_SECRET_ARN", "$secret_arn")


def _mlflow_login():
    import json
    import sys

    arn = os.environ["MLFLOW_CREDENTIALS_SECRET_ARN"]
    if os.environ.get("MLFLOW_TRACKING_USERNAME"):
        return
    try:
        import boto3

        client = boto3.client("secretsmanager", region_name=arn.split(":")[3])
        value = json.loads(client.get_secret_value(SecretId=arn)["SecretString"])
        os.environ["MLFLOW_TRACKING_USERNAME"] = value["username"]
        os.environ["MLFLOW_TRACKING_PASSWORD"] = value["password"]
    except Exception as err:
        reason = type(err).__name__
        print("MLflow credentials not loaded from " + arn + ": " + reason, file=sys.stderr)


_mlflow_login()
del _mlflow_login
PY
  cat >> "$HOME/.mlflow-tracking-uri.sh" <<'SH'
# MLflow basic auth: run mlflow_login once per shell before using the mlflow CLI or a script.
mlflow_login() {{
  eval "$(python3 -c 'import boto3, json, os, shlex
arn = os.environ["MLFLOW_CREDENTIALS_SECRET_ARN"]
client = boto3.client("secretsmanager", region_name=arn.split(":")[3])
value = json.loads(client.get_secret_value(SecretId=arn)["SecretString"])
print("export MLFLOW_TRACKING_USERNAME=" + shlex.quote(value["username"]))
print("export MLFLOW_TRACKING_PASSWORD=" + shlex.quote(value["password"]))')"
}}
SH
  printf 'export MLFLOW_CREDENTIALS_SECRET_ARN=%q\n' "$secret_arn" >> "$HOME/.mlflow-tracking-uri.sh"
fi
touch "$HOME/.bashrc"
grep -qs 'mlflow-tracking-uri.sh' "$HOME/.bashrc" \
  || echo '[ -f "$HOME/.mlflow-tracking-uri.sh" ] && . "$HOME/.mlflow-tracking-uri.sh"' >> "$HOME/.bashrc"
echo "MLFLOW_TRACKING_URI=$uri"
