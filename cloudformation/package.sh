#!/usr/bin/env bash
# make package: build both Lambdas for provided.al2023 on arm64 and lay them out where
# cloudformation/template.yml expects them. Needs no AWS account.
#
#   build/lambda/poller/bootstrap       CodeUri of PollerFunction (aws cloudformation package zips it)
#   build/lambda/completion/bootstrap   CodeUri of CompletionFunction
#   build/lambda/keeper/bootstrap       CodeUri of KeeperFunction
#   build/lambda/poller.zip, build/lambda/completion.zip, build/lambda/keeper.zip
#                                       the same, as deployable zips (bootstrap at the root)
#
# Toolchain: cargo-lambda and zig (the cross linker) from PyPI, pinned, in their own venv
# .venv-package; the Rust target aarch64-unknown-linux-gnu through rustup.
# Then cloudformation/deploy.sh (make deploy) uploads them with `aws cloudformation package`.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

CARGO_LAMBDA_VERSION=1.9.2
ZIGLANG_VERSION=0.14.1
PACKAGE_VENV=${PACKAGE_VENV:-$ROOT/.venv-package}
TARGET=aarch64-unknown-linux-gnu
OUT=$ROOT/build/lambda
BINARIES=(poller completion keeper)

# ---------------------------------------------------------------- toolchain
stamp="$PACKAGE_VENV/.installed-$CARGO_LAMBDA_VERSION-$ZIGLANG_VERSION"
if [ ! -f "$stamp" ]; then
  python3 -m venv "$PACKAGE_VENV"
  "$PACKAGE_VENV/bin/pip" install --quiet --upgrade pip==24.3.1
  "$PACKAGE_VENV/bin/pip" install --quiet "cargo-lambda==$CARGO_LAMBDA_VERSION" "ziglang==$ZIGLANG_VERSION"
  touch "$stamp"
fi
# cargo-lambda finds zig through `python3 -m ziglang` of the venv.
export PATH="$PACKAGE_VENV/bin:$PATH"

if command -v rustup >/dev/null 2>&1; then
  rustup target list --installed | grep -qx "$TARGET" || rustup target add "$TARGET"
fi

# ---------------------------------------------------------------- build
# glibc target: provided.al2023 has glibc 2.34; cargo-lambda links against that version with zig.
LAMBDA_DIR=$ROOT/build/cargo-lambda
args=(lambda build --release --arm64 --output-format zip --lambda-dir "$LAMBDA_DIR")
for bin in "${BINARIES[@]}"; do args+=(--bin "$bin"); done
cargo "${args[@]}"

# ---------------------------------------------------------------- lay out and check
rm -rf "$OUT"
mkdir -p "$OUT"
for bin in "${BINARIES[@]}"; do
  zip="$LAMBDA_DIR/$bin/bootstrap.zip"
  [ -f "$zip" ] || { echo "package: $zip was not built" >&2; exit 1; }
  cp "$zip" "$OUT/$bin.zip"
  mkdir -p "$OUT/$bin"
  python3 - "$OUT/$bin.zip" "$OUT/$bin" <<'PY'
import stat, sys, zipfile
archive, folder = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(archive) as z:
    names = z.namelist()
    if names != ["bootstrap"]:
        sys.exit(f"{archive}: expected only 'bootstrap' at the root, found {names}")
    info = z.getinfo("bootstrap")
    if not (info.external_attr >> 16) & stat.S_IXUSR:
        sys.exit(f"{archive}: bootstrap is not executable")
    z.extract("bootstrap", folder)
    data = z.read("bootstrap")
# ELF header: magic, 64-bit (EI_CLASS 2), little endian (EI_DATA 1), e_machine 183 = EM_AARCH64.
if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
    sys.exit(f"{archive}: bootstrap is not a 64-bit little-endian ELF file")
machine = int.from_bytes(data[18:20], "little")
if machine != 183:
    sys.exit(f"{archive}: bootstrap is for e_machine {machine}, not aarch64 (183)")
print(f"package: {archive}: bootstrap is an aarch64 ELF executable, {len(data) // 1024} KiB")
PY
  chmod 755 "$OUT/$bin/bootstrap"
done

echo "package: Lambda code in $OUT; deploy with cloudformation/deploy.sh (make deploy)"
