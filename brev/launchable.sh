#!/bin/bash
# The Brev launchable's setup script for mt3_nb. Paste this file into the launchable's
# setup-script box (VM mode), or pass it with --lifecycle-script-file. It finds the mt3_nb
# checkout (or clones it) and runs brev/setup.sh in it as the Jupyter user (arguments, such as
# --dry-run, are passed on).
set -euo pipefail

# The project's repository: settings.ini's git_url (.ci/run checks that the two agree). A fork: set
# MT3_REPO_URL in the launchable's environment, or change this line.
REPO_URL="${MT3_REPO_URL:-https://github.com/mt3-nb/mt3_nb}"
USER_NAME="${MT3_USER:-ubuntu}"                              # Brev VM mode's login/Jupyter user
USER_HOME="$(getent passwd "$USER_NAME" | cut -d: -f6)"
NAME="${REPO_URL##*/}"
DIR="${MT3_DIR:-$USER_HOME/${NAME%.git}}"
LOG="${MT3_LOG:-$USER_HOME/mt3_nb-setup.log}"

as_user() {
  if [[ "$(id -un)" == "$USER_NAME" ]]; then "$@"; else sudo -u "$USER_NAME" -H "$@"; fi
}

# A launchable whose code files are this repository gets it cloned into the home folder;
# give that clone a moment, and clone it here only if it never shows up.
for _ in $(seq 1 12); do
  [[ -f "$DIR/brev/setup.sh" ]] && break
  sleep 10
done
if [[ ! -f "$DIR/brev/setup.sh" ]]; then
  as_user git clone --depth 1 "$REPO_URL" "$DIR"
fi

echo "mt3_nb setup: $DIR/brev/setup.sh (log: $LOG)"
as_user bash "$DIR/brev/setup.sh" "$@" 2>&1 | as_user tee -a "$LOG"
