# Run by the container "public-keys" next to a replica or the gateway: the public keys of
# replicas added after the pod started (a new <id>.pub in the Secret pbft-keys, which the
# kubelet updates in the mounted volume) reach /keys, where the program looks for a
# key it lacks each second. Only public keys are copied, each once, atomically.
set -eu
while :; do
  for f in /secrets/keys/*.pub; do
    b="${f##*/}"
    if [ -f "$f" ] && [ ! -e "/keys/$b" ]; then
      cp "$f" "/keys/.$b.tmp"
      chmod 0400 "/keys/.$b.tmp"
      mv "/keys/.$b.tmp" "/keys/$b"
    fi
  done
  sleep 10
done
