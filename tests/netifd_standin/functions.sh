# Stand-in for OpenWrt's /lib/functions.sh: only what proto scripts and the API stand-in use.

# append VAR VALUE [SEP]: VAR="$VAR${SEP}VALUE" (no separator when VAR is empty)
append() {
	local __var="$1" __value="$2" __sep="${3:- }" __old
	eval "__old=\"\${$__var}\""
	[ -n "$__old" ] && [ -n "$__value" ] && __old="$__old$__sep"
	eval "$__var=\"\$__old\$__value\""
	export "$__var"
}
