#!/bin/sh
# netifd protocol handler "bmx7wg": automatic WireGuard tunnels between BMX7 mesh nodes.
#
#   config interface 'wgmesh'
#   	option proto 'bmx7wg'
#
# Setup checks what the helper needs, creates the WireGuard link and starts the helper
# (`bmx7wg run --netifd IFACE`) under netifd's supervision: if it dies, netifd tears the
# interface down (and brings it up again unless a failure blocked restarts). The helper reads
# its options from UCI itself, validates them (config.py), and reports the interface's
# addresses and routes to netifd with notify_proto whenever they change.
#
# Error codes (ifstatus IFACE / LuCI; the detail says what to fix):
#   NO_BMX7         bmx7 is not installed
#   NO_WIREGUARD    neither the wireguard kernel module nor wireguard-go is available
#   INVALID_CONFIG  an option has a bad value (the helper's one-line message follows)
#   PORT_IN_USE     option listen_port names a UDP port another socket holds
#   KEY_ERROR       the key file cannot be read or written (reported by the helper)
#   HELPER_FAILED   the helper itself could not run
# All of them block restarts: fix the cause, then `ifup IFACE` (or change the config).

[ -n "$INCLUDE_ONLY" ] || {
	. /lib/functions.sh
	. ../netifd-proto.sh
	init_proto "$@"
}

BMX7WG_HELPER=/usr/bin/bmx7wg

proto_bmx7wg_init_config() {
	# Every option the helper reads, so netifd notices changes on `reload` and LuCI/ubus
	# list them; the helper validates the values itself.
	proto_config_add_string "ifname"
	proto_config_add_string "private_key"
	proto_config_add_string "key_mode"
	proto_config_add_string "key_file"
	proto_config_add_int "listen_port"
	proto_config_add_string "port_range"
	proto_config_add_array "addresses"
	proto_config_add_boolean "auto_address"
	proto_config_add_string "auto_prefix"
	proto_config_add_array "announce"
	proto_config_add_int "mtu"
	proto_config_add_string "fwmark"
	proto_config_add_string "bmx7_dir"
	proto_config_add_string "sms_name"
	proto_config_add_int "hold_down"
	proto_config_add_int "keepalive"
	proto_config_add_array "allow_node"
	available=1
	no_device=1
}

# Report a setup failure the way an admin can read it, and stop netifd retrying.
bmx7wg_fail() {
	local config="$1" code="$2" detail="$3"
	echo "bmx7wg: $config: $code${detail:+: $detail}" >&2
	proto_notify_error "$config" "$code" ${detail:+"$detail"}
	proto_block_restart "$config"
	proto_setup_failed "$config"
}

# 0 when some UDP socket (IPv4 or IPv6) is bound to port $1.
bmx7wg_udp_port_busy() {
	local hex
	hex="$(printf '%04X' "$1")"
	grep -qs "^ *[0-9]*: [0-9A-F]*:$hex " /proc/net/udp /proc/net/udp6
}

proto_bmx7wg_setup() {
	local config="$1"
	local ifname listen_port message rc link_existed=0

	json_get_vars ifname listen_port
	[ -n "$ifname" ] || ifname="$config"

	command -v bmx7 >/dev/null 2>&1 || {
		bmx7wg_fail "$config" NO_BMX7 "bmx7 is not installed (opkg install bmx7 bmx7-sms bmx7-json)"
		return 1
	}

	# The helper validates its options itself: one line naming the option and the value.
	message="$("$BMX7WG_HELPER" check-config "$config" 2>&1 >/dev/null)"
	rc=$?
	case "$rc" in
		0) ;;
		2)
			bmx7wg_fail "$config" INVALID_CONFIG "${message#INVALID_CONFIG: }"
			return 1
			;;
		*)
			bmx7wg_fail "$config" HELPER_FAILED "$BMX7WG_HELPER check-config exited $rc: $(echo "$message" | tail -n 1)"
			return 1
			;;
	esac

	if ip link show dev "$ifname" >/dev/null 2>&1; then
		link_existed=1
	elif ! ip link add dev "$ifname" type wireguard 2>/dev/null; then
		# No kernel module: the helper falls back to wireguard-go and creates the link itself.
		command -v wireguard-go >/dev/null 2>&1 || {
			bmx7wg_fail "$config" NO_WIREGUARD "cannot create WireGuard link $ifname (install kmod-wireguard)"
			return 1
		}
	fi

	# A fixed port held by someone else (a port already on this very link is ours).
	if [ -n "$listen_port" ] && bmx7wg_udp_port_busy "$listen_port"; then
		if [ "$link_existed" = 0 ] || [ "$(wg show "$ifname" listen-port 2>/dev/null)" != "$listen_port" ]; then
			[ "$link_existed" = 1 ] || ip link del dev "$ifname" 2>/dev/null
			bmx7wg_fail "$config" PORT_IN_USE "option 'listen_port': UDP port $listen_port is in use"
			return 1
		fi
	fi

	proto_run_command "$config" "$BMX7WG_HELPER" run --netifd "$config"
}

proto_bmx7wg_teardown() {
	local config="$1"
	local ifname

	json_get_vars ifname
	[ -n "$ifname" ] || ifname="$config"

	# SIGTERM: the helper withdraws its advertisement from bmx7 and exits.
	proto_kill_command "$config"

	# Close the firewall port even if the helper was killed before it could.
	ubus call service set "{\"name\":\"bmx7wg-$config\",\"data\":{}}" >/dev/null 2>&1
	ubus call service delete "{\"name\":\"bmx7wg-$config\"}" >/dev/null 2>&1

	# Kernel link; a wireguard-go link goes away when its UAPI socket is removed.
	ip link del dev "$ifname" >/dev/null 2>&1 || rm -f "/var/run/wireguard/$ifname.sock"
}

[ -n "$INCLUDE_ONLY" ] || {
	add_protocol bmx7wg
}
