#!/usr/bin/env bash
# Regenerates the committed seed corpus (fuzz/corpus/<target>/) from the shared
# fixtures. The seeds follow each target's input layout (see the target's header
# comment and docs/fuzzing.md); review the diff before committing.
set -euo pipefail
fuzz="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
events="$fuzz/../tests/fixtures/events"
configs="$fuzz/../tests/fixtures/configs"
corpus="$fuzz/corpus"

# seed TARGET NAME HEADER_HEX [FILE]: the header bytes, then FILE's bytes (if any).
seed() {
  local target="$1" name="$2" header="$3" file="${4:-}"
  mkdir -p "$corpus/$target"
  {
    printf '%s' "$header" | xxd -r -p
    if [ -n "$file" ]; then cat "$file"; fi
  } > "$corpus/$target/$name"
}

# hex TEXT: TEXT's bytes in hex.
hex() { printf '%s' "$1" | xxd -p | tr -d '\n'; }

rm -rf "$corpus"

# --- body: flags, entry count, entries, [events], [limits], body -----------------
# flags: bits 0-1 inflection, 4 shadow, 8 routing off, 16 resign (with 32), 32 signed,
# 64 events, 128 limits. Entries: 00 i / 04 i / 08 i ... a literal in style k/4,
# 02 i a pattern, 03 len bytes a fuzzed entry.
seed body escaped-literals      "00 03 0000 0403 0806"                       "$events/escaped-keys.json"
seed body account-strict        "00 05 0200 0201 0003 0205 0004"             "$events/account-created.json"
seed body case-camel            "02 01 0014"                                 "$events/case-created.json"
seed body document-snake-shadow "07 02 0c0b 0200"                            "$events/document-processed.json"
seed body report-events         "40 01 0000 03"                              "$events/report-watchlist-matched.json"
seed body verification-recipe   "30 04 0207 0208 0209 020a"                  "$events/verification-passed.json"
seed body deep-limits           "80 00 08 2000"                              "$events/deep.json"
seed body duplicate-signed      "20 01 03 05 $(hex 'name*')"                 "$events/duplicate-name.json"
seed body not-an-event          "00 01 0000"                                 "$events/not-an-event.json"
seed body truncated             "00 01 0000"                                 "$events/truncated.json"
seed body bom                   "00 01 0000"                                 "$events/bom.json"
seed body invalid-utf8          "00 01 0000"                                 "$events/invalid-utf8.json"
seed body utf8-surrogate        "00 01 0000"                                 "$events/utf8-surrogate.json"
seed body inquiry-camel-kebab   "01 06 0000 0401 0803 0c07 1005 1406"        "$events/inquiry-approved.camel.json"
seed body envelope-names        "00 06 0016 0417 0818 0c19 101a 141b"        "$events/escaped-keys.json"

# --- signature: flags, secret, t (5), tolerance (4), delta (4), position (2),
# replacement, body xor, value count, values, body ------------------------------
t=006553f100   # 1700000000
seed signature fixture-secret "00 16 $(hex wbhsec_fixture_current) $t 0000012c 0000000a 0005 78 01 01 15 $(hex 't=1,v1=abc v2=ignored')" "$events/escaped-keys.json"
seed signature rotation "13 06 $(hex secret) $t 00093a80 00000e10 0030 41 80 02 10 $(hex 't=1700000000,v1=') 04 $(hex 'a=b,')" 
printf '{}' >> "$corpus/signature/rotation"
seed signature empty "00 00 0000000000 00000000 00000000 0000 20 01 00"
seed signature forged "10 01 73 $t 0000012c 00000000 0010 09 ff 01 50 $(hex "t=1700000000,v1=$(printf '%064d' 0)")" "$events/not-an-event.json"

# --- config: raw documents (the generator reads the same bytes as entropy) ---------
mkdir -p "$corpus/config"
for f in "$configs"/*.json; do cp "$f" "$corpus/config/$(basename "$f")"; done
cat > "$corpus/config/docs-example.json" <<'JSON'
{
  "mode": "enforce",
  "sources": {
    "allow": ["persona", "203.0.113.0/24", "2001:db8::/32"],
    "client_address": {"from": "x-forwarded-for", "trusted_hops": 1}
  },
  "signature": {
    "required": true,
    "secrets_env": ["PERSONA_WEBHOOK_SECRET", "PERSONA_WEBHOOK_SECRET_PREVIOUS"],
    "tolerance_seconds": 300
  },
  "blocklist": ["name-*", "birthdate", "address-*", "!address-country-code", "/data/attributes/fields/*-number?type=inquiry"],
  "events": {"forward": ["inquiry.*", "verification.*", "report/*"]},
  "normalize": {"inflection": "preserve", "routing_headers": true},
  "resign": {"secret_env": "ORIGIN_SECRET"},
  "limits": {"max_body_bytes": 1048576, "max_depth": 64}
}
JSON

# --- blocklist_entry: one entry per file -------------------------------------------
i=0
while IFS= read -r entry; do
  i=$((i + 1))
  mkdir -p "$corpus/blocklist_entry"
  printf '%s' "$entry" > "$corpus/blocklist_entry/$(printf '%02d' "$i")"
done <<'ENTRIES'
name-*
birthdate
emailAddress
name_last
*-number
*photo*
!address-country-code
/data/attributes/birthdate
/included/attributes/email-address
/*/attributes/fields/phone-number
/data/attributes/fields/*-number?type=inquiry
*-photo-url?type=verification/*
!/data/attributes/fields/selected-country-code
/data/attributes/*
birthdate?type=inquiry
name\u002dfirst
a/b
x?kind=y
/data
/meta/attributes/x
/data/relationships/x
x?type=a&b
name first
ENTRIES
# Regression seeds: control characters that once reached error messages raw (c5df3e8).
printf 'a\x7f' > "$corpus/blocklist_entry/24"
printf 'a\xc2\x9b[31m' > "$corpus/blocklist_entry/25"
echo "seeds: $(find "$corpus" -type f | wc -l) files, $(du -sh "$corpus" | cut -f1)"
