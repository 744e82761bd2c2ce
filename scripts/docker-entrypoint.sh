#!/bin/sh
# Container entry point: read the secrets that are whole values from files, then run the command.
#
# For each VAR below, VAR_FILE names a file (a compose/swarm secret under /run/secrets) whose
# content becomes VAR, so no secret sits in the environment given to `docker run` or in
# `docker inspect`. ALIPAY_KEY_FILE, ALIPAY_PRIVATE_KEY_FILE and FLOWER_BASIC_AUTH_FILE are read by
# the program itself and need nothing here.
set -eu

for var in UNSIGN_REDIS_URL UNSIGN_BROKER_URL; do
    file_var="${var}_FILE"
    eval "file=\${$file_var:-}"
    if [ -n "$file" ]; then
        if [ ! -r "$file" ]; then
            echo "error: $file_var: cannot read $file" >&2
            exit 1
        fi
        value="$(cat "$file")"
        export "$var=$value"
        unset "$file_var"
    fi
done

exec "$@"
