# Run by the init container "identity" of every pod that holds a PBFT identity (replicas,
# the gateway, the administrator's Job): it copies this pod's own share of the Secrets
# into the in-memory volume mounted at /keys, PBFT_KEYS_DIR: its private key $ID.key,
# every public key, and its NATS password as nats-password (PBFT_NATS_PASSWORD_FILE).
# The program's container never sees another identity's private key or password.
# See deploy/README.md.
set -eu
id="$ID"
test -f "/secrets/keys/$id.key" || { echo "secret pbft-keys (pbft-admin for the administrator) has no $id.key" >&2; exit 1; }
test -s "/secrets/nats/$id" || { echo "secret pbft-nats-auth has no key $id, or it is empty" >&2; exit 1; }
# A pod whose init container runs again keeps its emptyDirs: start afresh.
rm -f /keys/*
cp /secrets/keys/*.pub "/secrets/keys/$id.key" /keys/
cp "/secrets/nats/$id" /keys/nats-password
chmod 0400 /keys/*
