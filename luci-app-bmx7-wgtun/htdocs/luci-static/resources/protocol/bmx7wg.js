'use strict';
'require ui';
'require rpc';
'require form';
'require network';

/*
 * Interface form for `option proto 'bmx7wg'`.
 *
 * The validators below accept exactly what the helper's config.py accepts (it parses
 * numbers with Python's int(x, 0) and addresses with Python's ipaddress), so a value
 * the form saves never makes netifd report INVALID_CONFIG. The private key never
 * reaches the browser: the public key comes from `ubus call bmx7wg status`, and a new
 * key pair is made by the helper itself (`ubus call bmx7wg rotate_key`).
 */

var callStatus = rpc.declare({
	object: 'bmx7wg',
	method: 'status',
	params: [ 'interface' ],
	expect: { '': {} }
});

var callRotateKey = rpc.declare({
	object: 'bmx7wg',
	method: 'rotate_key',
	params: [ 'interface' ],
	expect: { '': {} }
});

var BMX7_PREFIX = { version: 6, bytes: [ 0xfd, 0x70 ], plen: 16 };
var ADVERT_MAX = 300, ADVERT_FIXED = 41, ADVERT_FIELD_MAX = 255;

/*
 * Python's whitespace: str.isspace() (used by strip(), split() and re's \s) differs from
 * JS's \s (which adds U+FEFF and lacks U+001C..U+001F and U+0085); int() strips the
 * same set minus U+001C..U+001F.
 */
var INT_SPACE = '\\t\\n\\v\\f\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
var PY_SPACE = INT_SPACE + '\\x1c-\\x1f';
var PY_STRIP_RE = new RegExp('^[' + PY_SPACE + ']+|[' + PY_SPACE + ']+$', 'g');
var INT_STRIP_RE = new RegExp('^[' + INT_SPACE + ']+|[' + INT_SPACE + ']+$', 'g');
var PY_SPLIT_RE = new RegExp('[' + PY_SPACE + ']+');
var PY_INT_RE = /^[+-]?(?:0[xX](?:_?[0-9a-fA-F])+|0[oO](?:_?[0-7])+|0[bB](?:_?[01])+|[1-9](?:_?[0-9])*|0(?:_?0)*)$/;
/* config.py reads a port range with C's blanks and digits (charset.py), as bmx7 and libuci read. */
var PORT_RANGE_RE = /^[\t\n\v\f\r ]*([0-9]+)[\t\n\v\f\r ]*[-:][\t\n\v\f\r ]*([0-9]+)[\t\n\v\f\r ]*$/;
var NAME_RE = /^[A-Za-z0-9_.-]{1,15}$/;

/* Python's int(text, 0): null when Python raises ValueError. */
function pyInt(text) {
	var s = String(text).replace(INT_STRIP_RE, ''), base = 10, neg = false;

	if (!PY_INT_RE.test(s))
		return null;

	if (s.charAt(0) == '-' || s.charAt(0) == '+') {
		neg = (s.charAt(0) == '-');
		s = s.substr(1);
	}

	s = s.replace(/_/g, '');

	if (/^0[xX]/.test(s)) { base = 16; s = s.substr(2); }
	else if (/^0[oO]/.test(s)) { base = 8; s = s.substr(2); }
	else if (/^0[bB]/.test(s)) { base = 2; s = s.substr(2); }

	return (neg ? -1 : 1) * parseInt(s, base);
}

function pySplit(text) {
	return String(text).split(PY_SPLIT_RE).filter(function(t) { return t.length > 0; });
}

/* ipaddress.IPv4Address: four decimal octets, no leading zeros. Returns 4 bytes or null. */
function parseIPv4(s) {
	var parts = s.split('.'), bytes = [];

	if (parts.length != 4)
		return null;

	for (var i = 0; i < 4; i++) {
		if (!/^[0-9]{1,3}$/.test(parts[i]) || (parts[i].length > 1 && parts[i].charAt(0) == '0'))
			return null;

		var v = +parts[i];
		if (v > 255)
			return null;

		bytes.push(v);
	}

	return bytes;
}

function parseHextet(s) {
	return /^[0-9a-fA-F]{1,4}$/.test(s) ? parseInt(s, 16) : null;
}

/* ipaddress.IPv6Address._ip_int_from_string (scope already split off). Returns 16 bytes or null. */
function parseIPv6(s) {
	var parts = s.split(':'), skip = -1, hi, lo, skipped, hextets = [], i, v;

	if (s === '' || parts.length < 3)
		return null;

	if (parts[parts.length - 1].indexOf('.') >= 0) {
		var v4 = parseIPv4(parts.pop());
		if (!v4)
			return null;
		parts.push(((v4[0] << 8) | v4[1]).toString(16), ((v4[2] << 8) | v4[3]).toString(16));
	}

	if (parts.length > 9)
		return null;

	for (i = 1; i < parts.length - 1; i++) {
		if (parts[i] === '') {
			if (skip >= 0)
				return null;
			skip = i;
		}
	}

	if (skip >= 0) {
		hi = skip;
		lo = parts.length - skip - 1;
		if (parts[0] === '' && --hi)
			return null;
		if (parts[parts.length - 1] === '' && --lo)
			return null;
		skipped = 8 - (hi + lo);
		if (skipped < 1)
			return null;
	}
	else {
		if (parts.length != 8 || parts[0] === '' || parts[parts.length - 1] === '')
			return null;
		hi = parts.length;
		lo = 0;
		skipped = 0;
	}

	for (i = 0; i < hi; i++) {
		if ((v = parseHextet(parts[i])) === null)
			return null;
		hextets.push(v);
	}

	for (i = 0; i < skipped; i++)
		hextets.push(0);

	for (i = parts.length - lo; i < parts.length; i++) {
		if ((v = parseHextet(parts[i])) === null)
			return null;
		hextets.push(v);
	}

	var bytes = [];
	hextets.forEach(function(h) { bytes.push(h >> 8, h & 255); });
	return bytes;
}

function hostBitsClear(bytes, plen) {
	for (var bit = plen; bit < bytes.length * 8; bit++)
		if (bytes[bit >> 3] & (0x80 >> (bit & 7)))
			return false;
	return true;
}

/* ipaddress' IPv4 netmask given as dotted quad: a netmask (ones, then zeros) or a hostmask. */
function dottedMaskLength(s) {
	var b = parseIPv4(s);

	if (!b)
		return null;

	var n = ((b[0] << 24) >>> 0) + (b[1] << 16) + (b[2] << 8) + b[3];

	for (var attempt = 0; attempt < 2; attempt++) {
		for (var len = 0; len <= 32; len++) {
			var mask = len ? (0xffffffff << (32 - len)) >>> 0 : 0;
			if (mask === n)
				return len;
		}
		n = (~n) >>> 0;
	}

	return null;
}

/*
 * ipaddress.ip_interface (strict=false) / ip_network (strict=true) on one string.
 * Returns { version, bytes, plen, scope } or null.
 */
function parseIP(text, strict) {
	var halves = String(text).split('/'), addr = halves[0], mask = halves[1], net = null;

	if (halves.length > 2)
		return null;

	var v4 = parseIPv4(addr);
	if (v4) {
		var plen4 = 32;
		if (halves.length == 2) {
			if (/^[0-9]+$/.test(mask))
				plen4 = (+mask <= 32) ? +mask : null;
			else
				plen4 = dottedMaskLength(mask);
		}
		if (plen4 === null)
			return null;
		net = { version: 4, bytes: v4, plen: plen4, scope: '' };
	}
	else {
		var pct = addr.indexOf('%'), scope = '';
		if (pct >= 0) {
			scope = addr.substr(pct + 1);
			addr = addr.substr(0, pct);
			if (scope === '' || scope.indexOf('%') >= 0)
				return null;
		}
		var v6 = parseIPv6(addr), plen6 = 128;
		if (!v6)
			return null;
		if (halves.length == 2)
			plen6 = (/^[0-9]+$/.test(mask) && +mask <= 128) ? +mask : null;
		if (plen6 === null)
			return null;
		net = { version: 6, bytes: v6, plen: plen6, scope: scope };
	}

	if (strict && !hostBitsClear(net.bytes, net.plen))
		return false;   /* parsed, but host bits set */

	return net;
}

function overlapsBmx7(net) {
	if (net.version != 6)
		return false;
	var probe = BMX7_PREFIX.bytes.concat(new Array(14).fill(0));
	var bits = Math.min(net.plen, BMX7_PREFIX.plen);
	for (var bit = 0; bit < bits; bit++)
		if ((net.bytes[bit >> 3] ^ probe[bit >> 3]) & (0x80 >> (bit & 7)))
			return false;
	return true;
}

function netKey(net) {
	return net.version + '/' + net.bytes.slice(0, Math.ceil(net.plen / 8)).join('.') + '/' + net.plen + '%' + net.scope;
}

/* Bytes the list fields take in the advert (advert.py packs entries greedily into <=255-byte fields). */
function packedSize(nets) {
	var total = 0, chunk = 0;

	nets.forEach(function(net) {
		var entry = 1 + Math.ceil(net.plen / 8);
		if (chunk + entry > ADVERT_FIELD_MAX) {
			total += 2 + chunk;
			chunk = 0;
		}
		chunk += entry;
	});

	return total + (chunk ? 2 + chunk : 0);
}

/* config.py's _check_advert_fits: the advert (with a /128 for the derived address) must fit 300 bytes. */
function advertProblem(ctx) {
	var hosts = [], nets = [], seen = {}, i, net;

	for (i = 0; i < ctx.addresses.length; i++) {
		net = parseIP(ctx.addresses[i], false);
		if (net)
			hosts.push({ version: net.version, bytes: net.bytes, plen: net.version == 4 ? 32 : 128, scope: net.scope });
	}

	if (ctx.auto_address)
		hosts.push({ version: 6, bytes: new Array(16).fill(0), plen: 128, scope: '' });

	for (i = 0; i < ctx.announce.length; i++)
		if ((net = parseIP(ctx.announce[i], true)))
			nets.push(net);

	for (i = 0; i < hosts.length; i++) {
		if (seen[netKey(hosts[i])])
			return _('the same address twice');
		seen[netKey(hosts[i])] = true;
	}

	seen = {};
	for (i = 0; i < nets.length; i++) {
		if (seen[netKey(nets[i])])
			return _('the same network twice');
		seen[netKey(nets[i])] = true;
	}

	var size = ADVERT_FIXED + packedSize(hosts) + packedSize(nets);
	if (size > ADVERT_MAX)
		return _('too many entries: the advertisement would be %d bytes, bmx7 carries at most %d').format(size, ADVERT_MAX);

	return null;
}

function intInRange(value, lo, hi) {
	var n = pyInt(value);

	if (n === null)
		return _('not a number');

	if (n < lo || n > hi)
		return _('must be %d..%d').format(lo, hi);

	return true;
}

function absolutePath(value) {
	return (String(value).charAt(0) == '/') ? true : _('must be an absolute path');
}

function listItems(value, check) {
	var items = pySplit(value);

	for (var i = 0; i < items.length; i++) {
		var res = check(items[i]);
		if (res !== true)
			return res;
	}

	return true;
}

function withEntries(ctx, key, value) {
	var copy = { addresses: ctx.addresses.slice(), announce: ctx.announce.slice(), auto_address: ctx.auto_address };
	copy[key] = copy[key].concat(pySplit(value));
	return copy;
}

/*
 * One validator per UCI option: value (string) -> true or an error text. An empty value
 * means "option not set" (LuCI removes it) and is always fine. `ctx` (lists only) holds the
 * other entries of the form, for the advert size check.
 */
var validators = {
	key_mode: function(value) {
		return (value === '' || value == 'persist' || value == 'session') ? true : _('expected persist or session');
	},

	key_file: function(value) {
		return (value === '') ? true : absolutePath(value);
	},

	listen_port: function(value) {
		return (value === '') ? true : intInRange(value, 1, 65535);
	},

	port_range: function(value) {
		if (value === '')
			return true;

		var m = PORT_RANGE_RE.exec(value);
		if (!m)
			return _('expected LOW-HIGH, e.g. 51820-52819');

		var lo = intInRange(m[1], 1, 65535), hi = intInRange(m[2], 1, 65535);
		if (lo !== true || hi !== true)
			return (lo !== true) ? lo : hi;

		return (pyInt(m[1]) > pyInt(m[2])) ? _('LOW is above HIGH') : true;
	},

	auto_address: function(value) {
		var v = String(value).replace(PY_STRIP_RE, '').toLowerCase();
		return (value === '' || [ '1', 'yes', 'on', 'true', 'enabled', '0', 'no', 'off', 'false', 'disabled' ].indexOf(v) >= 0)
			? true : _('expected 0 or 1');
	},

	auto_prefix: function(value) {
		if (value === '')
			return true;

		var net = parseIP(value, true);
		if (net === null)
			return _('not an IP network');
		if (net === false)
			return _('host bits set');
		if (net.version != 6 || net.plen < 8 || net.plen > 64)
			return _('must be an IPv6 prefix /8../64');
		if (overlapsBmx7(net))
			return _('overlaps bmx7\'s own fd70::/16');

		return true;
	},

	addresses: function(value, ctx) {
		var res = listItems(value, function(item) {
			return parseIP(item, false) ? true : _('not an IP address with optional /prefix');
		});

		return (res === true && ctx) ? (advertProblem(withEntries(ctx, 'addresses', value)) || true) : res;
	},

	announce: function(value, ctx) {
		var res = listItems(value, function(item) {
			var net = parseIP(item, true);
			if (net === null)
				return _('not an IP network');
			if (net === false)
				return _('host bits set');
			if (overlapsBmx7(net))
				return _('overlaps bmx7\'s fd70::/16: would route the mesh into the tunnel');
			return true;
		});

		return (res === true && ctx) ? (advertProblem(withEntries(ctx, 'announce', value)) || true) : res;
	},

	mtu: function(value) {
		return (value === '') ? true : intInRange(value, 1280, 9000);
	},

	fwmark: function(value) {
		return (value === '') ? true : intInRange(value, 0, 0xffffffff);
	},

	bmx7_dir: function(value) {
		return (value === '') ? true : absolutePath(value);
	},

	sms_name: function(value) {
		if (value === '')
			return true;

		var s = String(value);
		if (!NAME_RE.test(s) || s.charAt(0) == '.' || s.charAt(s.length - 1) == '.')
			return _('1-15 characters of A-Z a-z 0-9 _ . -, no leading or trailing dot');

		return true;
	},

	hold_down: function(value) {
		return (value === '') ? true : intInRange(value, 1, 3600);
	},

	keepalive: function(value) {
		return (value === '') ? true : intInRange(value, 0, 65535);
	}
};

/* The list/flag values currently in the form, for validators that look at other options. */
function formContext(section, section_id) {
	function list(name) {
		var v = section.formvalue(section_id, name);
		return Array.isArray(v) ? v : (v ? pySplit(v) : []);
	}

	return {
		addresses: list('addresses'),
		announce: list('announce'),
		auto_address: section.formvalue(section_id, 'auto_address') != '0'
	};
}

function bindValidator(o, name) {
	o.validate = function(section_id, value) {
		var ctx = (name == 'addresses' || name == 'announce') ? formContext(this.section, section_id) : null;
		return validators[name](value == null ? '' : String(value), ctx);
	};
}

function option(s, tab, widget, name, title, description) {
	var o = s.taboption(tab, widget, name, title, description);
	if (validators[name])
		bindValidator(o, name);
	return o;
}

function publicKeyText(st) {
	if (st && st.public_key)
		return st.public_key;
	if (st && st.error)
		return _('unknown: %s').format(st.error);
	return _('unknown: the bmx7wg helper is not running');
}

function fetchPublicKey(section_id) {
	return callStatus(section_id).then(publicKeyText).catch(function() {
		return publicKeyText(null);
	});
}

/* Read-only public key, as the running helper reports it. */
var cbiPublicKey = form.DummyValue.extend({
	load: function(section_id) {
		return fetchPublicKey(section_id);
	},

	renderWidget: function(section_id, option_index, cfgvalue) {
		return E('code', { 'data-bmx7wg-public-key': section_id, 'style': 'word-break: break-all' },
			(cfgvalue != null) ? cfgvalue : this.cfgvalue(section_id));
	},

	write: function() {},
	remove: function() {}
});

/* Re-read the public key until the helper reports the new one (it rotates asynchronously). */
function showNewPublicKey(section_id, before, tries) {
	return new Promise(function(resolve) { window.setTimeout(resolve, 1000); }).then(function() {
		return fetchPublicKey(section_id);
	}).then(function(key) {
		if (key == before && tries > 1)
			return showNewPublicKey(section_id, before, tries - 1);

		document.querySelectorAll('[data-bmx7wg-public-key]').forEach(function(el) {
			if (el.getAttribute('data-bmx7wg-public-key') == section_id)
				el.textContent = key;
		});
	});
}

/* Asks the running helper for a new key pair; the browser never sees a private key. */
var cbiRotateKey = form.Button.extend({
	onclick: function(ev, section_id) {
		if (!window.confirm(_('Generate a new key pair? Tunnels to other nodes pause until they learn the new public key through bmx7.')))
			return;

		return fetchPublicKey(section_id).then(function(before) {
			return callRotateKey(section_id).then(function(res) {
				if (res.error) {
					ui.addNotification(null, E('p', _('Key rotation failed: %s').format(res.error)), 'danger');
					return;
				}
				ui.addNotification(null, E('p', _('The helper is generating a new key pair.')), 'info');
				return showNewPublicKey(section_id, before, 10);
			});
		}).catch(function(err) {
			ui.addNotification(null, E('p', _('Key rotation failed: %s').format(err.message || err)), 'danger');
		});
	}
});

return network.registerProtocol('bmx7wg', {
	validators: validators,

	getI18n: function() {
		return _('WireGuard over BMX7 (bmx7wg)');
	},

	getIfname: function() {
		return this._ubus('l3_device') || this.sid;
	},

	getPackageName: function() {
		return 'bmx7-wgtun';
	},

	getOpkgPackage: function() {
		return 'bmx7-wgtun';
	},

	isFloating: function() {
		return true;
	},

	isVirtual: function() {
		return true;
	},

	getDevices: function() {
		return null;
	},

	containsDevice: function(ifname) {
		return (network.getIfnameOf(ifname) == this.getIfname());
	},

	renderFormOptions: function(s) {
		var o;

		/* -- general -------------------------------------------------------------------- */

		o = option(s, 'general', form.ListValue, 'key_mode', _('Key pair'),
			_('A private key fixed in UCI (option private_key) takes precedence and is never shown here.'));
		o.value('persist', _('Keep (stored on the router)'));
		o.value('session', _('New key pair each time the interface starts'));
		o.default = 'persist';

		o = s.taboption('general', cbiPublicKey, '_public_key', _('Public key'),
			_('Other nodes learn it through bmx7; it is safe to share.'));

		o = s.taboption('general', cbiRotateKey, '_rotate_key', _('Key rotation'));
		o.inputtitle = _('Generate new key pair');
		o.inputstyle = 'apply';

		o = option(s, 'general', form.Value, 'listen_port', _('Listen port'),
			_('UDP port for WireGuard. Empty: a random free port from the port range.'));
		o.placeholder = _('random');
		o.optional = true;

		o = option(s, 'general', form.Value, 'port_range', _('Port range'),
			_('Range the random port is picked from, LOW-HIGH.'));
		o.placeholder = '51820-52819';
		o.optional = true;

		o = option(s, 'general', form.Flag, 'auto_address', _('Automatic tunnel address'),
			_('Derive an IPv6 tunnel address from the bmx7 node id.'));
		o.default = o.enabled;

		o = option(s, 'general', form.Value, 'auto_prefix', _('Tunnel address prefix'),
			_('IPv6 prefix /8../64 for derived addresses; must not overlap bmx7\'s fd70::/16.'));
		o.placeholder = 'fd77::/16';
		o.depends('auto_address', '1');
		o.optional = true;

		o = option(s, 'general', form.DynamicList, 'addresses', _('Extra tunnel addresses'),
			_('More addresses of this node inside the tunnel, e.g. 10.99.0.1/32.'));
		o.optional = true;

		o = option(s, 'general', form.DynamicList, 'announce', _('Announced networks'),
			_('Networks of this node that other nodes may reach through its tunnel.'));
		o.optional = true;

		/* -- advanced ------------------------------------------------------------------- */

		o = option(s, 'advanced', form.Value, 'mtu', _('MTU'), _('1280..9000.'));
		o.placeholder = '1420';
		o.optional = true;

		o = option(s, 'advanced', form.Value, 'fwmark', _('Firewall mark'),
			_('32-bit mark for the encrypted packets, decimal or 0x hex.'));
		o.optional = true;

		o = option(s, 'advanced', form.Value, 'key_file', _('Key file'),
			_('Where the kept private key lives (0600).'));
		o.placeholder = '/etc/bmx7wg/%s.key'.format(s.section);
		o.depends('key_mode', 'persist');
		o.optional = true;

		o = option(s, 'advanced', form.Value, 'bmx7_dir', _('bmx7 runtime directory'));
		o.placeholder = '/var/run/bmx7';
		o.optional = true;

		o = option(s, 'advanced', form.Value, 'sms_name', _('SMS name'),
			_('Name of the bmx7 sms file carrying the advertisement. All nodes must use the same.'));
		o.placeholder = 'wgtun';
		o.optional = true;

		o = option(s, 'advanced', form.Value, 'hold_down', _('Hold-down (s)'),
			_('A node whose advertisement vanished keeps its tunnel this long.'));
		o.placeholder = '60';
		o.optional = true;

		o = option(s, 'advanced', form.Value, 'keepalive', _('Persistent keepalive (s)'),
			_('0 disables it.'));
		o.placeholder = '25';
		o.optional = true;
	}
});
