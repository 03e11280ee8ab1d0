#!/bin/sh
# The community chain on a single box: anvil with its state on disk.
#
# anvil keeps the chain in memory; --state loads the file at start and writes it at exit,
# --state-interval also writes it every STATE_INTERVAL seconds, so a power cut loses at
# most that much (the chain client resubmits a settlement batch that did not land: it is
# idempotent by period). Gas is free, as on the community's proof-of-authority network:
# members never hold a coin. No dev accounts: anvil's well-known test keys would otherwise
# be funded and unlocked; the community's relayer key deploys and submits.
#
# Settings (environment, e.g. from /etc/quartier/chain.env):
#   ANVIL           the anvil binary (default: anvil on PATH; `npm ci` in contracts/
#                   installs the pinned one under contracts/node_modules/.bin/)
#   CHAIN_HOST      listen address (default 127.0.0.1: the chain is the server's own)
#   CHAIN_PORT      JSON-RPC port (default 8545)
#   CHAIN_ID        chain id (default 31337, anvil's; choose one per community)
#   STATE_FILE      where the state lives (default /var/lib/quartier-chain/anvil-state.json)
#   STATE_INTERVAL  seconds between dumps (default 30)
#   BLOCK_TIME      seconds per block; empty = a block per transaction (default)
set -eu
ANVIL="${ANVIL:-anvil}"
STATE_FILE="${STATE_FILE:-/var/lib/quartier-chain/anvil-state.json}"
set -- --host "${CHAIN_HOST:-127.0.0.1}" --port "${CHAIN_PORT:-8545}" \
  --chain-id "${CHAIN_ID:-31337}" \
  --state "$STATE_FILE" --state-interval "${STATE_INTERVAL:-30}" \
  --accounts 0 --gas-price 0 --base-fee 0 --disable-min-priority-fee "$@"
if [ -n "${BLOCK_TIME:-}" ]; then set -- "$@" --block-time "$BLOCK_TIME"; fi
mkdir -p "$(dirname "$STATE_FILE")"
# exec: anvil gets systemd's SIGTERM itself and dumps its state on the way out.
exec "$ANVIL" "$@"
