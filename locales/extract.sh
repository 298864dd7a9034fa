#!/usr/bin/env bash
# Re-extract every text from the code and templates and merge it into the three catalogs.
set -euo pipefail
cd "$(dirname "$0")/.."
pybabel extract -F babel.cfg --no-location --sort-output --omit-header \
  -k _:1,1t -k _:1,2 -k __:1,1t -k __:1,2 -k gettext:1,1t -k gettext:1,2 \
  -o locales/messages.pot --ignore-dirs='.venv tests bench build' .
for locale in ru uk en; do
  po="locales/$locale/LC_MESSAGES/messages.po"
  if [ -f "$po" ]; then
    # pybabel update --omit-header drops the header (translator notes, Plural-Forms); keep it.
    header="$(awk 'NF == 0 { exit } { print }' "$po")"
    pybabel update -i locales/messages.pot -o "$po" -l "$locale" --omit-header --no-fuzzy-matching --ignore-obsolete
    if [ "$(head -c 1 "$po")" != "#" ]; then
      printf '%s\n\n' "$header" | cat - "$po" > "$po.tmp" && mv "$po.tmp" "$po"
    fi
  else
    pybabel init -i locales/messages.pot -o "$po" -l "$locale"
  fi
done
