#!/usr/bin/env bash
# The contender in bench/pki.py: kubefab's PKI bundle made with the openssl CLI, the way an operator's script would.
#
#   bench/openssl_pki.sh PLAN OUT ALGORITHM      (ALGORITHM: RSA-2048 | ECDSA-P256)
#
# PLAN lists what to make, one item a line, tab-separated, "-" for an empty field, parents before children:
#   cert        PATH  CA-PATH|-  SUBJECT  EKU|-  SAN|-  DAYS     -> OUT/PATH.crt, OUT/PATH.key (CA-PATH "-": a CA)
#   kubeconfig  PATH  SUBJECT  CLUSTER  USER  SERVER  DAYS      -> OUT/PATH, client cert signed by OUT/pki/ca
#   sa          PATH                                            -> OUT/PATH.key, OUT/PATH.pub
#   token       PATH                                            -> OUT/PATH, a kubeadm bootstrap token
# Each certificate is one `openssl req -x509` (key, request and signature in one process), as kubeadm shapes them:
# KeyUsage digitalSignature+keyEncipherment (+keyCertSign for a CA), SHA-256, CAs carry their CN as a DNS SAN.
set -euo pipefail

plan=$1 out=$2 algorithm=$3
case $algorithm in
  RSA-2048) key=(RSA -pkeyopt rsa_keygen_bits:2048) ;;
  ECDSA-P256) key=(EC -pkeyopt ec_paramgen_curve:P-256) ;;
  *) echo "openssl_pki.sh: unknown algorithm '$algorithm' (RSA-2048 or ECDSA-P256)" >&2; exit 2 ;;
esac
umask 077
mkdir -p "$out"
config=$out/.openssl.cnf
printf '[req]\ndistinguished_name = dn\nprompt = no\n[dn]\n' > "$config"

issue() {  # issue PATH CA-PATH|- SUBJECT EKU|- SAN|- DAYS
  local path=$out/$1 ca=$2 subject=$3 eku=$4 san=$5 days=$6
  local args=(-config "$config" -x509 -newkey "${key[@]}" -noenc -keyout "$path.key" -out "$path.crt"
              -subj "$subject" -days "$days")
  mkdir -p "$(dirname "$path")"
  if [[ $ca == - ]]; then
    args+=(-addext "basicConstraints=critical,CA:TRUE"
           -addext "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign")
  else
    args+=(-CA "$out/$ca.crt" -CAkey "$out/$ca.key" -addext "basicConstraints=critical,CA:FALSE"
           -addext "keyUsage=critical,digitalSignature,keyEncipherment" -addext "authorityKeyIdentifier=keyid")
  fi
  [[ $eku == - ]] || args+=(-addext "extendedKeyUsage=$eku")
  [[ $san == - ]] || args+=(-addext "subjectAltName=$san")
  openssl req "${args[@]}"
  chmod 644 "$path.crt"
}

kubeconfig() {  # kubeconfig PATH SUBJECT CLUSTER USER SERVER DAYS
  local path=$out/$1 cluster=$3 user=$4 server=$5
  local client; client=$(mktemp -d "$out/.client.XXXXXX")
  issue "${client#"$out/"}/client" pki/ca "$2" clientAuth - "$6"
  mkdir -p "$(dirname "$path")"
  cat > "$path" <<EOF
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: $(base64 -w0 "$out/pki/ca.crt")
    server: $server
  name: $cluster
contexts:
- context:
    cluster: $cluster
    user: $user
  name: $user@$cluster
current-context: $user@$cluster
kind: Config
preferences: {}
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 "$client/client.crt")
    client-key-data: $(base64 -w0 "$client/client.key")
EOF
  rm -r "$client"
}

while IFS=$'\t' read -r kind a b c d e f; do
  case $kind in
    cert) issue "$a" "$b" "$c" "$d" "$e" "$f" ;;
    kubeconfig) kubeconfig "$a" "$b" "$c" "$d" "$e" "$f" ;;
    sa) mkdir -p "$(dirname "$out/$a")"
        openssl genpkey -algorithm "${key[@]}" -out "$out/$a.key"
        openssl pkey -in "$out/$a.key" -pubout -out "$out/$a.pub" ;;
    token) printf '%s.%s\n' "$(openssl rand -hex 3)" "$(openssl rand -hex 8)" > "$out/$a" ;;
    *) echo "openssl_pki.sh: $plan: unknown item '$kind'" >&2; exit 2 ;;
  esac
done < "$plan"
rm "$config"
