#!/usr/bin/env bash
# Install the peer stream processors for bench/streams_vs_peers.py into bench/.venv.
#
# faust-streaming and quixstreams pin other versions of libraries flows also uses
# (quixstreams downgrades confluent-kafka and croniter), so they live in their own virtualenv,
# never in the environment flows runs in. bench/.venv is ignored by git.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python3}"
if [ ! -x "$here/.venv/bin/python" ]; then
    "$python" -m venv "$here/.venv"
fi
"$here/.venv/bin/python" -m pip install --quiet --upgrade pip
"$here/.venv/bin/python" -m pip install --quiet faust-streaming quixstreams
"$here/.venv/bin/python" - <<'PY'
import importlib.metadata as m
for name in ("faust-streaming", "quixstreams", "aiokafka", "confluent-kafka"):
    print(f"{name} {m.version(name)}")
PY
echo "peers installed in $here/.venv; run: python bench/streams_vs_peers.py"
