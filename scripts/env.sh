# Sourced by scripts/book.sh and scripts/test.sh: creates .venv with Python 3.11 if it is missing,
# installs requirements.txt into it whenever that file changed, and activates it.
# Override the interpreter with PYTHON=/path/to/python3.11.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

if [ ! -x "$VENV/bin/python" ]; then
    PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
    if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
        echo "env.sh: $PYTHON is not Python 3.11; set PYTHON=/path/to/python3.11" >&2
        exit 1
    fi
    echo "env.sh: creating $VENV with $PYTHON" >&2
    "$PYTHON" -m venv "$VENV"
fi

# Reinstall only when requirements.txt changed since the last successful install.
STAMP="$VENV/.requirements.sha256"
WANTED="$(sha256sum "$ROOT/requirements.txt" | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANTED" ]; then
    echo "env.sh: installing requirements.txt into $VENV" >&2
    "$VENV/bin/python" -m pip install --quiet -r "$ROOT/requirements.txt"
    echo "$WANTED" > "$STAMP"
fi
# The kernel papermill starts (`python3`) must be this environment's Python, also after the folder moved.
if ! grep -qF "\"$VENV/bin/python\"" "$VENV/share/jupyter/kernels/python3/kernel.json" 2>/dev/null; then
    "$VENV/bin/python" -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (ipykernel)" >/dev/null
fi

# shellcheck disable=SC1091
source "$VENV/bin/activate"
cd "$ROOT"
