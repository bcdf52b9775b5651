# Sample server configuration of one OpenBao (or Vault) node of the cluster: integrated
# Raft storage, one TLS listener, on an EC2 instance of the Auto Scaling group.
#
# This is a template. user-data.sh (next to this file) copies it to the instance and
# replaces, with sed:
#   @INSTANCE_ID@  the EC2 instance id (i-0123456789abcdef0), from IMDSv2
#   @PRIVATE_IP@   the instance's private IPv4 address, from IMDSv2
#   @DATA_DIR@     the Raft data directory (user-data's DATA_DIR)
#   @TLS_DIR@      the directory of the node's TLS certificate and key (TLS_DIR)
#
# The node starts sealed and alone. node-lifecycle (the Lambda function) does the rest
# on the launch lifecycle action: it initialises the cluster on the very first node
# (and stores the key shares in SSM), or joins the node to the running cluster,
# unseals it and waits for it to become a voter before it lets the instance in
# service. Neither this file nor user-data.sh initialises or unseals anything.

# ------------------------------------------------------------------------- storage
storage "raft" {
  path = "@DATA_DIR@"

  # node_id MUST be the EC2 instance id: node-lifecycle maps Raft peers to instances
  # by it. A terminating instance's peer is found by its id, and reconcile removes a
  # peer whose id matches no instance of the group once it has been unhealthy for
  # DepartedPeerGraceSeconds. A node with any other id is never matched to its
  # instance: its launch waits in vain for it to become a voter.
  # Never reuse the data directory of another instance.
  node_id = "@INSTANCE_ID@"

  # No retry_join by default: node-lifecycle joins each new node itself (to the
  # current leader, verified with the CA in VaultCaCertPem). retry_join is also
  # supported: a node that already joined by itself is recognised as a peer and the
  # function skips the join (it still unseals it under a Shamir seal and waits for it
  # to become a voter). For example, with cloud auto-join on the group's tag:
  #
  # retry_join {
  #   auto_join               = "provider=aws region=eu-west-1 tag_key=aws:autoscaling:groupName tag_value=vault-prod addr_type=private_v4"
  #   auto_join_scheme        = "https"
  #   auto_join_port          = 8200
  #   leader_ca_cert_file     = "@TLS_DIR@/ca.crt"
  #   leader_tls_servername   = "vault.internal"  # a name on the nodes' certificates
  # }
}

# ------------------------------------------------------------------------ listener
# The functions reach every node on https://<private ip>:8200, the private IP being the
# one EC2 reports for the instance (never a tag): the certificate must hold that
# private IP as an IP SAN and be signed by the CA given to the stack as VaultCaCertPem. The nodes' security group
# must let the functions' security groups in on 8200, and the nodes in on 8200-8201.
listener "tcp" {
  address         = "0.0.0.0:8200"
  cluster_address = "0.0.0.0:8201"

  tls_cert_file   = "@TLS_DIR@/server.crt"
  tls_key_file    = "@TLS_DIR@/server.key"
  tls_min_version = "tls12"
}

# Where other nodes and clients reach this node (requests forwarded to the leader,
# Raft traffic on the cluster port).
api_addr     = "https://@PRIVATE_IP@:8200"
cluster_addr = "https://@PRIVATE_IP@:8201"

# With integrated (Raft) storage, mlock is advised off: locking memory does not mix
# well with the memory-mapped Raft database files, which can then exhaust memory.
# Keep the secrets off disk by running without swap instead (user-data turns it off).
# Vault needs this line (the systemd unit from user-data grants no CAP_IPC_LOCK, so
# with mlock on Vault would refuse to start). OpenBao never locks memory and only
# logs a warning about the unknown field: the line may stay, or go.
disable_mlock = true

ui = true

# -------------------------------------------------------------------------- seals
# With no seal stanza the node uses Shamir's seal: node-lifecycle unseals each new
# node with the unseal shares it stored in SSM (KeyShares / KeyThreshold in the
# stack). With an auto-unseal seal the node unseals itself and the shares the
# function stores are recovery shares. Uncomment at most one.
#
# AWS KMS. Built into Vault; OpenBao 2.7 and later no longer build it in: install
# the KMS plugin (openbao-plugin-kms-aws, from openbao-plugins) and declare it, e.g.:
#   plugin_directory = "/usr/lib/openbao/plugins"
#   plugin "kms" "awskms" {
#     command   = "openbao-plugin-kms-aws"
#     sha256sum = "<sha256 of the plugin binary>"
#   }
# Use a key of its own, not the stack's key (whose policy only lets SSM, S3,
# DynamoDB and Lambda use it): the instances' role needs kms:Encrypt, kms:Decrypt and
# kms:DescribeKey on it. Credentials come from the instance profile.
#
# seal "awskms" {
#   region     = "eu-west-1"
#   kms_key_id = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
# }
#
# Transit: another Vault / OpenBao cluster's transit engine holds the key. The token
# is best given in the service's environment (VAULT_TOKEN / BAO_TOKEN), not here.
#
# seal "transit" {
#   address         = "https://unseal.internal:8200"
#   mount_path      = "transit/"
#   key_name        = "vault-prod-autounseal"
#   tls_ca_cert     = "@TLS_DIR@/transit-ca.crt"
# }
