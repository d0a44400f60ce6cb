# Sourced by the build steps once "$work/results" lists the results: records this build's
# garbage-collector roots, its results and their derivations (with keep-outputs a derivation
# keeps its build-time inputs), so that a bounded store keeps what the latest builds need.
roots=/nix/var/nix/gcroots/nixfront
first=$(head -n1 "$work/results")
root_name="$(date +%s%N)-${first##*/}"
mkdir -p "$roots/$root_name"
i=0
while read -r p; do
    ln -sfn "$p" "$roots/$root_name/result-$i"
    drv=$(nix-store --query --deriver "$p" 2>/dev/null || true)
    [ -n "$drv" ] && [ -e "$drv" ] && ln -sfn "$drv" "$roots/$root_name/drv-$i"
    i=$((i + 1))
done <"$work/results"
