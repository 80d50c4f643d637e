#!/usr/bin/env bash
# Prints the CHANGELOG.md section of one version (the lines under "## [VERSION]" up to the next
# "## [" heading or the link references), without the heading. The release workflow publishes it
# as the notes of the GitHub release. Fails when the section is missing or empty.
# Usage: bash .ci/release-notes.sh 0.1.0 [CHANGELOG.md]
set -euo pipefail

version=${1:?usage: release-notes.sh VERSION [CHANGELOG]}
changelog=${2:-CHANGELOG.md}

notes=$(awk -v heading="## [$version]" '
  index($0, "## [") == 1 || /^\[[^]]+\]: / {
    if (found) exit
    if ($0 == heading || index($0, heading " ") == 1) found = 1
    next
  }
  found { print }
  END { if (!found) exit 1 }
' "$changelog") || {
  echo "error: $changelog has no section \"## [$version]\"" >&2
  exit 1
}

# Without the blank lines around it (command substitution already drops the trailing ones).
notes=$(sed '/./,$!d' <<<"$notes")
if [[ -z $notes ]]; then
  echo "error: the section \"## [$version]\" of $changelog is empty" >&2
  exit 1
fi
printf '%s\n' "$notes"
