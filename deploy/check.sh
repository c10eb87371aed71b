#!/bin/sh
# Validates every deploy artifact with its own tool. Run from the
# repository's root after a build (it uses target/debug/sluice or
# $SLUICE_BIN):
#   deploy/check.sh
# Needs: systemd-analyze (systemd), promtool (Debian's prometheus
# package), and Python 3 for kubernetes-validate and docker-compose's
# schema check, each installed into a cached venv under
# $SLUICE_DEPLOY_VENVS (their dependencies conflict).
set -eu
bin=${SLUICE_BIN:-$PWD/target/debug/sluice}
venvs=${SLUICE_DEPLOY_VENVS:-$HOME/.cache/sluice-deploy}
k8s=$venvs/kubernetes-validate
compose=$venvs/docker-compose
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "-- sluice check-config: the example, the container's and the Kubernetes ConfigMap's configs"
"$bin" check-config deploy/sluice.toml > /dev/null
"$bin" check-config deploy/docker/sluice.toml > /dev/null

if [ ! -x "$k8s/bin/kubernetes-validate" ]; then
  python3 -m venv "$k8s"
  "$k8s/bin/pip" install -q kubernetes-validate==1.37.0
fi
if [ ! -x "$compose/bin/docker-compose" ]; then
  python3 -m venv "$compose"
  # docker-compose 1.29.2 needs PyYAML < 6, which has no wheel for this
  # Python, and PyYAML 5's source does not build with Cython 3: a
  # constraint (which pip applies to the build's own environment too)
  # keeps the build on Cython 2.
  echo 'cython<3' > "$tmp/pip-constraints.txt"
  PIP_CONSTRAINT="$tmp/pip-constraints.txt" "$compose/bin/pip" install -q docker-compose==1.29.2
fi
"$k8s/bin/python" - "$tmp/configmap.toml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open("deploy/k8s/sluice.yaml")) if d]
cm = next(d for d in docs if d["kind"] == "ConfigMap")
open(sys.argv[1], "w").write(cm["data"]["sluice.toml"])
PY
"$bin" check-config "$tmp/configmap.toml" > /dev/null

echo "-- systemd-analyze verify and security (the unit, with ExecStart pointed at this build)"
sed "s|/usr/local/bin/sluice|$bin|g" deploy/sluice.service > "$tmp/sluice.service"
systemd-analyze verify "$tmp/sluice.service"
# Captured first: under sh, a pipe's status would be tail's.
security=$(systemd-analyze security --offline=true --threshold=25 "$tmp/sluice.service")
printf '%s\n' "$security" | tail -1

echo "-- kubernetes-validate --strict deploy/k8s/*.yaml"
"$k8s/bin/kubernetes-validate" --strict --quiet deploy/k8s/*.yaml

echo "-- docker-compose config (the compose file's schema)"
"$compose/bin/docker-compose" -f deploy/docker-compose.yml config -q

echo "-- promtool check config (and the alert rules it loads)"
promtool check config deploy/prometheus.yml
echo "deploy artifacts: ok"
