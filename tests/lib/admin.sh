# SPDX-License-Identifier: Apache-2.0
#
# For tests of `cox run --admin 127.0.0.1:0` (sourced):
#   admin_wait_port PID LOG   until cox (PID, logging to LOG) says where its admin API
#                             listens: ADMIN_PORT is set, status 0; 1 if PID exits or
#                             10 s pass (ADMIN_PORT empty).
admin_wait_port() {
	local i
	ADMIN_PORT=
	for i in $(seq 200); do
		ADMIN_PORT=$(sed -n 's|.*admin: UI and API on http://127\.0\.0\.1:\([0-9]*\)/.*|\1|p' \
		    "$2" 2>/dev/null | head -1)
		[ -n "$ADMIN_PORT" ] && return 0
		kill -0 "$1" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}
