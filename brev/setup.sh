#!/usr/bin/env bash
# One step from a fresh NVIDIA Brev GPU instance (VM mode, Ubuntu) to the mt3_nb app notebook.
# Safe to run again: every step first checks whether its work is already done.
# See brev/README.md for the launchable settings and what each step costs.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: bash brev/setup.sh [--dry-run] [--allow-cpu] [--no-apt] [--no-download] [-h|--help]

Makes this machine ready to run the mt3_nb app notebook (nbs/09_app.ipynb) on its GPU:
  1. system packages: FluidSynth + the FluidR3 General MIDI soundfont (apt, sudo when not root)
  2. a Python virtual environment (default: <repo>/.venv)
  3. the CUDA build of PyTorch (installed before anything else pulls in torch)
  4. mt3_nb itself, editable, with its dev extras (pip install -e ".[dev]": tests, JupyterLab)
  5. pyfluidsynth, the binding pretty_midi uses to render MIDI with FluidSynth
  6. the MT3 checkpoint (mt3_nb download; it skips files whose SHA-256 already matches)
  7. a Jupyter kernel "mt3_nb (GPU)" pointing at the virtual environment
  8. a GPU check (torch.cuda.is_available())
  9. where to open the app notebook

Options:
  --dry-run      print every step and its commands; change nothing
  --allow-cpu    a missing GPU is a warning, not an error; without an NVIDIA driver an
                 installed CPU build of torch is kept
  --no-apt       skip step 1 (no sudo, or not Debian/Ubuntu: install FluidSynth yourself)
  --no-download  skip step 6
  -h, --help     this text

Environment (all optional):
  MT3_VENV           virtual environment folder            (default: <repo>/.venv)
  MT3_PYTHON         interpreter that creates it, >= 3.10  (default: python3)
  TORCH_SPEC         what pip installs in step 3           (default: torch==2.13.0)
  TORCH_INDEX_URL    pip index for step 3; unset = chosen from the NVIDIA driver
                     (>= 580: PyPI, whose Linux x86_64 torch 2.13 wheels are CUDA 13.0 builds;
                      525-579: https://download.pytorch.org/whl/cu126; no driver and --allow-cpu:
                      the CPU build from https://download.pytorch.org/whl/cpu); set empty = PyPI
  MT3_REINSTALL_TORCH=1  reinstall torch even if a CUDA build is present
  PYFLUIDSYNTH_SPEC  default: pyfluidsynth>=1.3
  MT3_CHECKPOINT     an existing checkpoint (T5X folder or .safetensors): step 6 is skipped
  MT3_CHECKPOINT_URL where step 6 downloads from (default: the public bucket)
  MT3_CACHE_DIR      where the checkpoint is kept (default: the user cache folder)
  JUPYTER_DATA_DIR   where step 7 puts the kernel (default: Jupyter's user data folder)
  MT3_AS_ROOT=1      when run as root, do not switch to the repository's owner
EOF
}

DRY_RUN=0 ALLOW_CPU=0 DO_APT=1 DO_DOWNLOAD=1
ORIG_ARGS=("$@")
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    --allow-cpu) ALLOW_CPU=1 ;;
    --no-apt) DO_APT=0 ;;
    --no-download) DO_DOWNLOAD=0 ;;
    -h|--help) usage; exit 0 ;;
    *) printf 'brev/setup.sh: unknown option %s (see --help)\n' "$arg" >&2; exit 2 ;;
  esac
done

# ---------------------------------------------------------------- locations and settings
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$SCRIPT_DIR/.." && pwd)"
# Brev runs a launchable's setup script from a systemd unit, where HOME may be unset.
if [[ -z "${HOME:-}" ]]; then
  HOME="$(getent passwd "$(id -un)" | cut -d: -f6)"
  export HOME
fi
VENV="${MT3_VENV:-$REPO/.venv}"
PY="$VENV/bin/python"
PYTHON="${MT3_PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
PYFLUIDSYNTH_SPEC="${PYFLUIDSYNTH_SPEC:-pyfluidsynth>=1.3}"
KERNEL_NAME="mt3_nb"
KERNEL_DISPLAY="mt3_nb (GPU)"
APP_NB="nbs/09_app.ipynb"
SOUNDFONT="/usr/share/sounds/sf2/FluidR3_GM.sf2"
APT_PACKAGES=(fluidsynth fluid-soundfont-gm)
STAMP="$VENV/.mt3_nb-install.sha256"
CU126_INDEX="https://download.pytorch.org/whl/cu126"
CPU_INDEX="https://download.pytorch.org/whl/cpu"
TOTAL=9

# ---------------------------------------------------------------- helpers
say()  { printf '%s\n' "$*"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die()  { printf 'ERROR: %s\n' "$*" >&2; exit 1; }
# Print a command the way one would type it (arguments with spaces or specials in single quotes).
show() {
  local a out=""
  for a in "$@"; do
    if [[ "$a" =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then out+=" $a"; else out+=" '${a//\'/\'\\\'\'}'"; fi
  done
  printf '    $%s\n' "$out"
}
# Print a command, then run it unless --dry-run.
run()  { show "$@"; if (( DRY_RUN )); then return 0; fi; "$@"; }

STEP_N=0 STEP_T0=0 T_START=$SECONDS
SUMMARY=()
step() {
  STEP_N=$((STEP_N + 1)); STEP_T0=$SECONDS; STEP_NAME="$1"
  printf '\n==> [%d/%d] %s\n' "$STEP_N" "$TOTAL" "$1"
}
# End of a step: "$1" is what happened (done / already done / skipped / planned / warning).
step_end() {
  local dt=$((SECONDS - STEP_T0))
  printf '    -> %s (%d s)\n' "$1" "$dt"
  SUMMARY+=("$(printf '%d. %-42s %-13s %4d s' "$STEP_N" "$STEP_NAME" "$1" "$dt")")
}
planned() { if (( DRY_RUN )); then echo "planned"; else echo "done"; fi; }

SUDO=()
if (( EUID != 0 )); then SUDO=(sudo); fi

pkg_installed() { dpkg-query -W -f="\${Status}" "$1" 2>/dev/null | grep -q 'install ok installed'; }

# apt-get, waiting for the lock: Brev's own provisioning may run apt while this script starts.
apt_get() {
  show "${SUDO[@]}" apt-get "$@"
  if (( DRY_RUN )); then return 0; fi
  local i
  for i in 1 2 3 4 5 6; do
    if "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 "$@"; then
      return 0
    fi
    warn "apt-get $1 failed (attempt $i of 6; another apt process may hold the lock); retrying in 20 s"
    sleep 20
  done
  die "apt-get $* kept failing"
}

venv_ok() { [[ -x "$PY" ]] && "$PY" -c 'import sys' 2>/dev/null; }
# Prints the CUDA version torch was built with; empty for a CPU build or no torch.
torch_cuda() {
  if venv_ok; then "$PY" -c 'import torch; print(torch.version.cuda or "")' 2>/dev/null || true; fi
}
nvidia_driver() {
  command -v nvidia-smi >/dev/null 2>&1 || return 0
  nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n 1 || true
}
install_hash() { cat "$REPO/setup.py" "$REPO/settings.ini" "$REPO/pyproject.toml" 2>/dev/null | sha256sum | cut -d' ' -f1; }

# ---------------------------------------------------------------- run as the Jupyter user
# A setup script pasted into a launchable may run as root; the venv, the kernel and the
# checkpoint cache must belong to the user Jupyter runs as (the owner of the clone).
if (( EUID == 0 )) && [[ "${MT3_AS_ROOT:-0}" != 1 ]]; then
  owner="$(stat -c %U "$REPO")"
  if [[ "$owner" != root && "$owner" != UNKNOWN ]]; then
    owner_home="$(getent passwd "$owner" | cut -d: -f6)"
    pass_env=(HOME="$owner_home" USER="$owner" PATH="$PATH")
    for v in MT3_VENV MT3_PYTHON TORCH_SPEC TORCH_INDEX_URL MT3_REINSTALL_TORCH PYFLUIDSYNTH_SPEC \
             MT3_CHECKPOINT MT3_CHECKPOINT_URL MT3_OFFLINE MT3_CACHE_DIR JUPYTER_DATA_DIR; do
      if [[ -n "${!v+set}" ]]; then pass_env+=("$v=${!v}"); fi
    done
    say "Running as root: switching to $owner, the owner of $REPO (MT3_AS_ROOT=1 stays root)."
    if command -v sudo >/dev/null 2>&1; then
      exec sudo -u "$owner" -- env "${pass_env[@]}" bash "$SCRIPT_DIR/setup.sh" "${ORIG_ARGS[@]}"
    elif command -v runuser >/dev/null 2>&1; then
      exec runuser -u "$owner" -- env "${pass_env[@]}" bash "$SCRIPT_DIR/setup.sh" "${ORIG_ARGS[@]}"
    fi
    warn "neither sudo nor runuser found: continuing as root"
  fi
fi

say "mt3_nb Brev setup$( (( DRY_RUN )) && printf ' (DRY RUN: nothing is changed)')"
say "  repository: $REPO"
say "  venv:       $VENV"
say "  user:       $(id -un) (HOME=$HOME)"
[[ -f "$REPO/settings.ini" && -f "$REPO/setup.py" ]] || die "$REPO does not look like the mt3_nb repository (no settings.ini/setup.py)"

# ---------------------------------------------------------------- 1. system packages
step "System packages (FluidSynth, GM soundfont)"
if (( ! DO_APT )); then
  step_end "skipped"
elif ! command -v dpkg-query >/dev/null 2>&1; then
  warn "not a Debian/Ubuntu system: install FluidSynth and a General MIDI soundfont yourself"
  step_end "skipped"
else
  need=()
  for p in "${APT_PACKAGES[@]}"; do pkg_installed "$p" || need+=("$p"); done
  # Ubuntu's python3 has no ensurepip unless python3.X-venv is installed.
  if ! venv_ok && command -v "$PYTHON" >/dev/null 2>&1 && ! "$PYTHON" -c 'import ensurepip' 2>/dev/null; then
    need+=("$("$PYTHON" -c 'import sys; print("python3.%d-venv" % sys.version_info[1])')")
  fi
  if (( ${#need[@]} == 0 )); then
    say "    installed: ${APT_PACKAGES[*]}"
    step_end "already done"
  else
    if (( EUID != 0 && ! DRY_RUN )) && ! command -v sudo >/dev/null 2>&1; then
      die "need root or sudo to install ${need[*]} (or rerun with --no-apt)"
    fi
    say "    missing: ${need[*]}"
    apt_get update
    apt_get install -y --no-install-recommends "${need[@]}"
    step_end "$(planned)"
  fi
  if (( ! DRY_RUN )) && [[ ! -f "$SOUNDFONT" ]]; then warn "soundfont not found at $SOUNDFONT"; fi
fi

# ---------------------------------------------------------------- 2. virtual environment
step "Python virtual environment"
if venv_ok; then
  say "    $("$PY" --version) in $VENV"
  step_end "already done"
else
  if (( ! DRY_RUN )); then
    command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found (set MT3_PYTHON)"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
      || die "$PYTHON is $("$PYTHON" --version 2>&1); mt3_nb needs Python >= 3.10 (set MT3_PYTHON)"
  fi
  run "$PYTHON" -m venv "$VENV"
  run "$PY" -m pip install --quiet --upgrade pip
  step_end "$(planned)"
fi

# ---------------------------------------------------------------- 3. PyTorch (CUDA build)
step "PyTorch, CUDA build"
# "<version> <cuda or cpu>" of the installed torch; empty when there is none.
torch_now=""
if venv_ok; then
  torch_now="$("$PY" -c 'import torch; print(torch.__version__, torch.version.cuda or "cpu")' 2>/dev/null || true)"
fi
driver="$(nvidia_driver)"
if [[ -n "$torch_now" && "${torch_now##* }" != cpu && "${MT3_REINSTALL_TORCH:-0}" != 1 ]]; then
  say "    torch ${torch_now% *}, built for CUDA ${torch_now##* }"
  step_end "already done"
elif [[ -n "$torch_now" && -z "$driver" ]] && (( ALLOW_CPU )); then
  say "    torch ${torch_now% *} (CPU build) kept: no NVIDIA driver here and --allow-cpu"
  step_end "already done"
else
  major="${driver%%.*}"
  index_args=()
  if [[ -n "${TORCH_INDEX_URL+set}" ]]; then
    why="from TORCH_INDEX_URL"
    if [[ -n "$TORCH_INDEX_URL" ]]; then index_args=(--index-url "$TORCH_INDEX_URL"); fi
  elif [[ -z "$driver" ]] && (( ALLOW_CPU )); then
    why="no NVIDIA driver found and --allow-cpu: the CPU build"
    index_args=(--index-url "$CPU_INDEX")
  elif [[ -z "$driver" ]]; then
    why="no NVIDIA driver found; PyPI's torch 2.13 is the CUDA 13.0 build"
  elif (( major >= 580 )); then
    why="driver $driver >= 580 runs CUDA 13; PyPI's torch 2.13 is the CUDA 13.0 build"
  elif (( major >= 525 )); then
    why="driver $driver < 580 cannot run CUDA 13 but runs CUDA 12.x: the cu126 build"
    index_args=(--index-url "$CU126_INDEX")
  else
    why="driver $driver is older than 525, too old for any CUDA build of torch 2.13"
    warn "$why; installing the PyPI build anyway (the GPU check will fail)"
  fi
  say "    index: ${index_args[1]:-PyPI} ($why)"
  if [[ -n "$torch_now" ]]; then
    # torch==X also matches an installed X+cpu, so pip would keep it: remove it first.
    say "    replacing the installed torch ${torch_now% *} (${torch_now##* })"
    run "$PY" -m pip uninstall -y torch
  fi
  read -r -a torch_args <<<"$TORCH_SPEC"
  run "$PY" -m pip install "${index_args[@]}" "${torch_args[@]}"
  step_end "$(planned)"
fi

# ---------------------------------------------------------------- 4. mt3_nb
step "mt3_nb (editable, dev extras, JupyterLab)"
want_hash="$(install_hash)"
if venv_ok && [[ -x "$VENV/bin/mt3_nb" && "$(cat "$STAMP" 2>/dev/null || true)" == "$want_hash" ]] \
   && [[ "$("$PY" -c 'import mt3_nb, os; print(os.path.dirname(os.path.realpath(mt3_nb.__file__)))' 2>/dev/null || true)" == "$REPO/mt3_nb" ]]; then
  say "    mt3_nb $("$PY" -c 'import mt3_nb; print(mt3_nb.__version__)') from $REPO"
  step_end "already done"
else
  say "    not installed from this checkout yet, or setup.py/settings.ini changed since"
  # torch is already satisfied, so this keeps the CUDA build installed above.
  run "$PY" -m pip install -e "${REPO}[dev]"
  if (( ! DRY_RUN )); then printf '%s\n' "$want_hash" >"$STAMP"; fi
  step_end "$(planned)"
fi

# ---------------------------------------------------------------- 5. pyfluidsynth
step "pyfluidsynth (FluidSynth rendering)"
fs_version=""
if venv_ok; then
  fs_version="$("$PY" -c 'from importlib.metadata import version; print(version("pyfluidsynth"))' 2>/dev/null || true)"
fi
if [[ -n "$fs_version" ]]; then
  say "    pyfluidsynth $fs_version installed"
  fs_status="already done"
else
  run "$PY" -m pip install "$PYFLUIDSYNTH_SPEC"
  fs_status="$(planned)"
fi
# The binding loads libfluidsynth (apt: libfluidsynth3, pulled in by fluidsynth) on import.
if (( ! DRY_RUN )) && ! "$PY" -c 'import fluidsynth; fluidsynth.Synth' 2>/dev/null; then
  warn "pyfluidsynth cannot load libfluidsynth (install the apt package fluidsynth); the app falls back to sine synthesis"
  fs_status="warning"
fi
step_end "$fs_status"

# ---------------------------------------------------------------- 6. checkpoint
step "MT3 checkpoint"
if (( ! DO_DOWNLOAD )); then
  step_end "skipped"
elif [[ -n "${MT3_CHECKPOINT:-}" ]]; then
  say "    MT3_CHECKPOINT=$MT3_CHECKPOINT: using it, nothing to download"
  step_end "skipped"
else
  # Verifies every file's SHA-256 and downloads only what is missing or wrong.
  run "$VENV/bin/mt3_nb" download
  step_end "$(planned)"
fi

# ---------------------------------------------------------------- 7. Jupyter kernel
step "Jupyter kernel \"$KERNEL_DISPLAY\""
kernel_py=""
if venv_ok; then
  kernel_py="$("$PY" -c "from jupyter_client.kernelspec import KernelSpecManager as M; print(M().get_kernel_spec('$KERNEL_NAME').argv[0])" 2>/dev/null || true)"
fi
if [[ "$kernel_py" == "$PY" || ( -n "$kernel_py" && "$(realpath "$kernel_py" 2>/dev/null)" == "$(realpath "$PY" 2>/dev/null)" ) ]]; then
  say "    kernel $KERNEL_NAME -> $kernel_py"
  step_end "already done"
else
  run "$PY" -m ipykernel install --user --name "$KERNEL_NAME" --display-name "$KERNEL_DISPLAY"
  step_end "$(planned)"
fi

# ---------------------------------------------------------------- 8. GPU check
step "GPU check"
gpu_ok=1
gpu_code='import sys, torch
if not torch.cuda.is_available():
    sys.exit("    torch.cuda.is_available() is False (torch %s, built for CUDA %s)" % (torch.__version__, torch.version.cuda))
p = torch.cuda.get_device_properties(0)
print("    torch %s, CUDA %s, %s (sm_%d%d), %.1f GiB" % (torch.__version__, torch.version.cuda, p.name, p.major, p.minor, p.total_memory / 2**30))
try:
    x = torch.randn(256, 256, device="cuda")
    ok = bool((x @ x).isfinite().all())
except RuntimeError as e:
    sys.exit("    a matmul on the GPU failed: %s" % str(e).splitlines()[0])
sys.exit(0 if ok else "    a matmul on the GPU gave non-finite values")'
show "$PY" -c "import torch; assert torch.cuda.is_available()"
if (( DRY_RUN )); then
  step_end "planned"
elif "$PY" -c "$gpu_code"; then
  step_end "done"
else
  gpu_ok=0
  if command -v nvidia-smi >/dev/null 2>&1; then
    say "    nvidia-smi: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>&1 | head -n 1 || true)"
  else
    say "    nvidia-smi: not found (no NVIDIA driver on this machine)"
  fi
  say "    torch 2.13's CUDA 13 build needs driver >= 580 and a Turing or newer GPU (sm_75+); for an"
  say "    older driver or a V100/P100 (sm_70/sm_60) use the CUDA 12.6 build:"
  say "    MT3_REINSTALL_TORCH=1 TORCH_INDEX_URL=$CU126_INDEX bash brev/setup.sh"
  if (( ALLOW_CPU )); then
    warn "no usable GPU: mt3_nb will run on the CPU (slow); --allow-cpu makes this a warning"
    step_end "warning"
  else
    step_end "FAILED"
  fi
fi

# ---------------------------------------------------------------- 9. the app notebook
step "Open the app notebook"
nb="$REPO/$APP_NB"
[[ -f "$nb" ]] || say "    (note: $APP_NB is not in this checkout yet)"
rel="${nb#"$HOME"/}"
if pgrep -f 'jupyter[- ](lab|notebook|server)' >/dev/null 2>&1; then
  say "    Jupyter is running (on Brev: the instance page's \"Open Notebook\" button)."
  say "    In JupyterLab's file browser open:  $rel"
  say "    then Kernel > Change Kernel... > \"$KERNEL_DISPLAY\""
else
  say "    No Jupyter server is running. Start one (JupyterLab came with the dev extras) with:"
  say "      $VENV/bin/jupyter lab --no-browser $nb"
  say "    and pick the kernel \"$KERNEL_DISPLAY\". From your laptop: ssh -L 8888:localhost:8888 <instance>"
fi
say "    Check from a terminal:  $VENV/bin/mt3_nb transcribe --example -o /tmp/mt3_out"
step_end "done"

# ---------------------------------------------------------------- summary
printf '\nSummary%s:\n' "$( (( DRY_RUN )) && printf ' (dry run)')"
printf '  %s\n' "${SUMMARY[@]}"
printf '  total %d s\n' $((SECONDS - T_START))
if (( ! gpu_ok && ! ALLOW_CPU )); then
  die "no usable GPU (see step 8); rerun with --allow-cpu to accept the CPU"
fi
