#!/usr/bin/env bash
# Installs the Debian packages moontorch needs to build, test and run its demo.
#   - all present: prints nothing, exits 0 (one dpkg-query call);
#   - some missing, running as root: apt-get update + non-interactive install;
#   - some missing, not root: prints the exact command to run and exits 1.
# Extra packages can be appended with MOONTORCH_EXTRA_PACKAGES="pkg1 pkg2".
set -euo pipefail

PACKAGES=(
  build-essential
  cmake
  pkg-config
  lua5.4
  liblua5.4-dev
  libopenblas-dev
  libzip-dev
  zlib1g-dev
  libcjson-dev    # safetensors headers
  libdeflate-dev  # fast CRC-32 for the zip records
  libopenmpi-dev  # torch.distributed (MPI); the build goes on without it, distributed then says so
  openmpi-bin     # mpirun, for the distributed tests and examples
  luarocks
  lua-busted
  python3-torch   # brings python3-numpy; only for the tests that compare with PyTorch
  dataset-fashion-mnist  # torch.datasets.FashionMNIST's files (the demo, spec/40-data_spec.lua)
)
# shellcheck disable=SC2206
PACKAGES+=(${MOONTORCH_EXTRA_PACKAGES:-})

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "install-deps: not a Debian system (no dpkg-query); make sure these are installed:" >&2
  echo "  ${PACKAGES[*]}" >&2
  exit 0
fi

# One call for all packages; a package dpkg does not know at all is reported on stderr and
# simply does not appear with "ii".
installed=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' "${PACKAGES[@]}" 2>/dev/null || true)
missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! grep -qE "^ii +${pkg//+/\\+}\$" <<<"$installed"; then
    missing+=("$pkg")
  fi
done

# Debian's luarocks runs on Lua 5.1 and so defaults to 5.1; moontorch is a Lua 5.4 rock. As
# root, and only when no default has been chosen yet, make 5.4 LuaRocks' system-wide default
# (the file `luarocks config --scope system lua_version 5.4` would write, without that command
# also rewriting config-5.4.lua), so that a plain `luarocks make` installs for lua5.4.
# `luarocks --lua-version=5.4 make` works either way. MOONTORCH_NO_LUAROCKS_DEFAULT=1 skips this.
luarocks_default() {
  local conf=${LUAROCKS_SYSCONFDIR:-/etc/luarocks}
  [ "${MOONTORCH_NO_LUAROCKS_DEFAULT:-0}" = 1 ] && return 0
  [ "$(id -u)" -eq 0 ] || return 0
  [ -d "$conf" ] || return 0
  [ -e "$conf/default-lua-version.lua" ] && return 0
  [ -e "${HOME:-/root}/.luarocks/default-lua-version.lua" ] && return 0
  echo 'return "5.4"' >"$conf/default-lua-version.lua"
  echo "install-deps: made Lua 5.4 LuaRocks' default ($conf/default-lua-version.lua)"
}

if [ ${#missing[@]} -eq 0 ]; then
  luarocks_default
  exit 0
fi

install_cmd="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing Debian packages: ${missing[*]}" >&2
  echo "install-deps: install them with:" >&2
  echo "  sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive $install_cmd" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update </dev/null
# shellcheck disable=SC2086
apt-get install -y --no-install-recommends "${missing[@]}" </dev/null
luarocks_default
