#!/usr/bin/env bash
# Kaldi-style option parsing for the recipe scripts: `--max-minutes 10` sets $max_minutes.
# Only variables the script already defined can be set, so a typo is an error.
while [ $# -gt 0 ]; do
  case "$1" in
    --*)
      name=$(echo "${1#--}" | tr '-' '_')
      if [ -z "${!name+x}" ] || [ $# -lt 2 ]; then echo "$0: unknown option or missing value: $1" >&2; exit 1; fi
      printf -v "$name" '%s' "$2"; shift 2 ;;
    *) echo "$0: unexpected argument: $1" >&2; exit 1 ;;
  esac
done
