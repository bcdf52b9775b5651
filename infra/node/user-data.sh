#!/bin/bash
# User-data of the Vault / OpenBao nodes (the launch template of the Auto Scaling
# group), for Amazon Linux 2023 and Debian.
#
# On first boot it:
#   1. reads the instance id, private IP and region from IMDSv2;
#   2. writes the server configuration from the template (openbao.hcl next to this
#      file), with node_id = the instance id;
#   3. installs and starts the server as a systemd unit.
#
# It tags nothing and needs no AWS permission: the functions address every node as
# https://<private IP that EC2 reports>:8200 (their VAULT_SCHEME and VAULT_PORT), never
# from a tag, so the instance profile needs no ec2:CreateTags.
#
# It never initialises, unseals or joins anything: the node starts sealed and alone,
# and node-lifecycle (the Lambda function answering the group's launch lifecycle
# hook) initialises the cluster, joins this node, unseals it and waits for it to be
# a voter before the instance goes in service.
#
# Expected in the AMI (or put there by an earlier part of the user-data):
#   - the server binary ($BIN: bao for OpenBao, vault for Vault) on the PATH;
#   - the configuration template at $CONFIG_TEMPLATE (infra/node/openbao.hcl);
#   - the node's TLS certificate and key in $TLS_DIR (server.crt, server.key), the
#     certificate naming the instance's private IP as an IP SAN and signed by the CA
#     given to the stack as VaultCaCertPem (the functions verify exactly that).
set -euo pipefail

# ---------------------------------------------------------------------- settings
BIN="${BIN:-bao}"                      # bao (OpenBao) or vault (Vault)
SERVICE="${SERVICE:-openbao}"          # systemd unit and service user, e.g. vault
CONFIG_DIR="${CONFIG_DIR:-/etc/${SERVICE}}"
CONFIG_TEMPLATE="${CONFIG_TEMPLATE:-${CONFIG_DIR}/${SERVICE}.hcl.tpl}"
CONFIG_FILE="${CONFIG_DIR}/${SERVICE}.hcl"
DATA_DIR="${DATA_DIR:-/opt/${SERVICE}/data}"  # Raft data; no '|' or '&' in paths
TLS_DIR="${TLS_DIR:-${CONFIG_DIR}/tls}"

log() { echo "user-data: $*" >&2; }
fail() { log "error: $*"; exit 1; }

# ------------------------------------------------------------- instance metadata
IMDS=http://169.254.169.254/latest
IMDS_TOKEN="$(curl -fsS --retry 5 --retry-connrefused --max-time 5 -X PUT \
  -H "X-aws-ec2-metadata-token-ttl-seconds: 300" "${IMDS}/api/token")" \
  || fail "no IMDSv2 token"
imds() {
  curl -fsS --retry 5 --retry-connrefused --max-time 5 \
    -H "X-aws-ec2-metadata-token: ${IMDS_TOKEN}" "${IMDS}/meta-data/$1"
}
INSTANCE_ID="$(imds instance-id)" || fail "no instance id from IMDS"
PRIVATE_IP="$(imds local-ipv4)" || fail "no private IPv4 address from IMDS"
REGION="$(imds placement/region)" || fail "no region from IMDS"
[[ "${INSTANCE_ID}" =~ ^i-[0-9a-f]+$ ]] || fail "unexpected instance id ${INSTANCE_ID}"
[[ "${PRIVATE_IP}" =~ ^[0-9]+(\.[0-9]+){3}$ ]] || fail "unexpected private IP ${PRIVATE_IP}"
log "instance ${INSTANCE_ID}, private IP ${PRIVATE_IP}, region ${REGION}"

# --------------------------------------------------------------- prerequisites
BIN_PATH="$(command -v "${BIN}")" || fail "${BIN} is not installed (expected in the AMI)"
[[ -r "${CONFIG_TEMPLATE}" ]] || fail "no configuration template at ${CONFIG_TEMPLATE}"
for f in server.crt server.key; do
  [[ -s "${TLS_DIR}/${f}" ]] || fail "missing ${TLS_DIR}/${f}"
done

if ! id -u "${SERVICE}" >/dev/null 2>&1; then
  NOLOGIN="$(command -v nologin || echo /bin/false)"
  useradd --system --user-group --home-dir "${DATA_DIR}" --no-create-home \
    --shell "${NOLOGIN}" "${SERVICE}"
fi

# No mlock with Raft (see the template): keep memory off disk by having no swap.
swapoff -a || true
if [[ -f /etc/fstab ]]; then
  sed -i -E '/^[^#].*[[:space:]]swap[[:space:]]/s/^/# disabled by user-data: /' /etc/fstab
fi

# ---------------------------------------------------------------- configuration
install -d -m 0750 -o root -g "${SERVICE}" "${CONFIG_DIR}"
install -d -m 0700 -o "${SERVICE}" -g "${SERVICE}" "${DATA_DIR}"
# The service user reads the key through its group; nobody else does.
chgrp "${SERVICE}" "${TLS_DIR}" "${TLS_DIR}/server.key"
chmod 0750 "${TLS_DIR}"
chmod 0640 "${TLS_DIR}/server.key"

tmp="$(mktemp "${CONFIG_DIR}/.${SERVICE}.hcl.XXXXXX")"
sed -e "s|@INSTANCE_ID@|${INSTANCE_ID}|g" \
    -e "s|@PRIVATE_IP@|${PRIVATE_IP}|g" \
    -e "s|@DATA_DIR@|${DATA_DIR}|g" \
    -e "s|@TLS_DIR@|${TLS_DIR}|g" \
    "${CONFIG_TEMPLATE}" > "${tmp}"
if left="$(grep -o '@[A-Z_]*@' "${tmp}" | sort -u | tr '\n' ' ')" && [[ -n "${left}" ]]; then
  rm -f "${tmp}"
  fail "placeholders left in the configuration: ${left}"
fi
chown root:"${SERVICE}" "${tmp}"
chmod 0640 "${tmp}"
mv -f "${tmp}" "${CONFIG_FILE}"
log "wrote ${CONFIG_FILE} (node_id ${INSTANCE_ID})"

# ------------------------------------------------------------------- systemd unit
# Environment for the server (e.g. the transit seal's token) goes in
# ${CONFIG_DIR}/${SERVICE}.env, readable by root only.
cat > "/etc/systemd/system/${SERVICE}.service" <<EOF
[Unit]
Description=${SERVICE} server (Raft node ${INSTANCE_ID})
Requires=network-online.target
After=network-online.target
ConditionFileNotEmpty=${CONFIG_FILE}
StartLimitIntervalSec=60
StartLimitBurst=3

[Service]
Type=notify
User=${SERVICE}
Group=${SERVICE}
EnvironmentFile=-${CONFIG_DIR}/${SERVICE}.env
ExecStart=${BIN_PATH} server -config=${CONFIG_FILE}
ExecReload=/bin/kill --signal HUP \$MAINPID
KillMode=process
KillSignal=SIGINT
Restart=on-failure
RestartSec=5
TimeoutStopSec=30
LimitNOFILE=65536
NoNewPrivileges=yes
ProtectSystem=full
ProtectHome=read-only
PrivateTmp=yes
PrivateDevices=yes

[Install]
WantedBy=multi-user.target
EOF

systemctl daemon-reload
systemctl enable --now "${SERVICE}.service"
log "${SERVICE} started, sealed; node-lifecycle takes it from here"
