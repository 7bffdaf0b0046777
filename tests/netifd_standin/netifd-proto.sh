# Stand-in for /lib/netifd/netifd-proto.sh (netifd's shell API for protocol handlers).
#
# Same functions and arguments as the real one; each netifd notification is built as JSON by
# standin.py and sent with `ubus call network.interface notify_proto JSON`, exactly the call
# the real API makes. The `ubus` on PATH is the recorder (standin.py ubus), which also does
# what netifd does on run/kill: start and supervise the helper, signal it.
# jshn is replaced by a small JSON reader for json_load/json_get_vars(/json_get_var).

_standin() { "$STANDIN_PYTHON" "$STANDIN_PY" "$@"; }

# ---- jshn subset --------------------------------------------------------------------------
json_load() { _STANDIN_JSON="$1"; }
json_get_var() {
	local __dest="$1" __key="$2" __val
	__val="$(_standin jget "$_STANDIN_JSON" "$__key")" || { eval "$__dest=''"; return 1; }
	eval "$__dest=\"\$__val\""
}
json_get_vars() {
	local __v __name __default
	for __v in "$@"; do
		__name="${__v%%:*}"
		__default=""
		[ "$__name" = "$__v" ] || __default="${__v#*:}"
		json_get_var "$__name" "$__name" || eval "$__name=\"\$__default\""
	done
}

# ---- declarations (dump) -------------------------------------------------------------------
proto_config_add_string() { append _STANDIN_CONFIG "$1:string"; }
proto_config_add_int() { append _STANDIN_CONFIG "$1:int"; }
proto_config_add_boolean() { append _STANDIN_CONFIG "$1:boolean"; }
proto_config_add_array() { append _STANDIN_CONFIG "$1:array"; }
proto_config_add_defaults() {
	proto_config_add_boolean defaultroute
	proto_config_add_boolean peerdns
	proto_config_add_boolean renew
	proto_config_add_int metric
}

# ---- notifications ---------------------------------------------------------------------------
_standin_notify() {
	local json
	json="$(_standin build "$@")" || return 1
	ubus call network.interface notify_proto "$json"
}

proto_init_update() {
	_STANDIN_IFNAME="$1"; _STANDIN_UP="$2"; _STANDIN_EXT="$3"
	_STANDIN_ADDR4=""; _STANDIN_ADDR6=""; _STANDIN_ROUTE4=""; _STANDIN_ROUTE6=""; _STANDIN_KEEP=0
}
proto_set_keep() { _STANDIN_KEEP="$1"; }
proto_add_ipv4_address() { append _STANDIN_ADDR4 "$1/$2"; }
proto_add_ipv6_address() { append _STANDIN_ADDR6 "$1/$2"; }
proto_add_ipv4_route() { append _STANDIN_ROUTE4 "$1/$2/$3/$5"; }
proto_add_ipv6_route() { append _STANDIN_ROUTE6 "$1/$2/$3/$4"; }
proto_send_update() {
	_standin_notify update "$1" "$_STANDIN_IFNAME" "$_STANDIN_UP" "$_STANDIN_KEEP" \
		"$_STANDIN_ADDR4" "$_STANDIN_ADDR6" "$_STANDIN_ROUTE4" "$_STANDIN_ROUTE6"
}
proto_run_command() { _standin_notify run_command "$@"; }
proto_kill_command() { _standin_notify kill_command "$@"; }
proto_notify_error() { _standin_notify error "$@"; }
proto_block_restart() { _standin_notify block_restart "$1"; }
proto_set_available() { _standin_notify set_available "$1" "$2"; }
proto_add_host_dependency() { _standin_notify host_dependency "$@"; }
proto_setup_failed() { _standin_notify setup_failed "$1"; }

# ---- entry point -----------------------------------------------------------------------------
init_proto() {
	proto="$1"; shift
	cmd="$1"; shift
	case "$cmd" in
		dump)
			add_protocol() {
				no_device=0; no_device_config=0; no_proto_task=0; available=0
				renew_handler=0; teardown_on_l3_link_down=0
				_STANDIN_CONFIG=""
				eval "proto_$1_init_config"
				_standin dump "$1" "$_STANDIN_CONFIG" "$no_device" "$no_device_config" \
					"$no_proto_task" "$available" "$renew_handler" "$teardown_on_l3_link_down"
			}
			;;
		setup|teardown|renew)
			interface="$1"; shift
			data="$1"; shift
			ifname="$1"; shift
			# what the recorder needs to act as netifd for the helper it starts
			export STANDIN_INTERFACE="$interface" STANDIN_DATA="$data" STANDIN_IFNAME="$ifname"
			add_protocol() {
				[ "$proto" = "$1" ] || return 0
				json_load "$data"
				_standin log script "$cmd" "$interface"
				eval "proto_$1_$cmd \"\$interface\" \"\$ifname\""
			}
			;;
	esac
}
