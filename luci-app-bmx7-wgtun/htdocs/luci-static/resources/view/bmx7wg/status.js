'use strict';
'require view';
'require rpc';
'require uci';
'require poll';
'require dom';

/*
 * Status → BMX7 WireGuard: one section per `proto bmx7wg` interface, from the helper's
 * ubus object (`bmx7wg status` / `bmx7wg peers`, answered from its state file).
 * Read-only; refreshed every 5 seconds.
 */

var callStatus = rpc.declare({
	object: 'bmx7wg',
	method: 'status',
	params: [ 'interface' ],
	expect: { '': {} }
});

var callPeers = rpc.declare({
	object: 'bmx7wg',
	method: 'peers',
	params: [ 'interface' ],
	expect: { '': {} }
});

var STATE_COLORS = {
	active: '#2e7d32',
	pending: '#b26a00',
	expired: '#6b6b6b',
	rejected: '#c62828'
};

var SVG_NS = 'http://www.w3.org/2000/svg';

function stateLabel(state) {
	switch (state) {
	case 'active': return _('active');
	case 'pending': return _('pending');
	case 'expired': return _('expired');
	case 'rejected': return _('rejected');
	default: return state || '?';
	}
}

function badge(state) {
	return E('span', {
		'class': 'bmx7wg-badge',
		'data-state': state,
		'style': 'display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-size:90%;background:' +
			(STATE_COLORS[state] || '#6b6b6b')
	}, stateLabel(state));
}

function ago(timestamp) {
	if (!timestamp)
		return _('Never');

	var seconds = Math.max(0, Math.floor(Date.now() / 1000 - timestamp));

	if (seconds < 60)
		return _('%ds ago').format(seconds);
	if (seconds < 3600)
		return _('%dm ago').format(Math.floor(seconds / 60));
	if (seconds < 86400)
		return _('%dh ago').format(Math.floor(seconds / 3600));
	return _('%dd ago').format(Math.floor(seconds / 86400));
}

function bytes(n) {
	var units = [ 'B', 'KiB', 'MiB', 'GiB', 'TiB' ], i = 0;

	n = +n || 0;
	while (n >= 1024 && i < units.length - 1) {
		n /= 1024;
		i++;
	}

	return (i ? n.toFixed(1) : String(n)) + ' ' + units[i];
}

function lines(list) {
	if (!Array.isArray(list) || !list.length)
		return '-';

	var out = [];
	list.forEach(function(item, i) {
		if (i)
			out.push(E('br'));
		out.push(String(item));
	});
	return out;
}

function table(titles, rows, placeholder, attrs) {
	var head = E('tr', { 'class': 'tr table-titles' }, titles.map(function(t) {
		return E('th', { 'class': 'th' }, t);
	}));

	var body = rows.length ? rows : [
		E('tr', { 'class': 'tr placeholder' }, E('td', { 'class': 'td', 'colspan': titles.length }, E('em', placeholder)))
	];

	return E('table', Object.assign({ 'class': 'table' }, attrs || {}), [ head ].concat(body));
}

function field(title, value) {
	return E('tr', { 'class': 'tr' }, [
		E('td', { 'class': 'td left', 'width': '33%' }, E('strong', title)),
		E('td', { 'class': 'td left' }, value)
	]);
}

function alertBox(kind, text) {
	return E('div', { 'class': 'alert-message ' + kind, 'data-bmx7wg-alert': kind }, E('p', text));
}

/* E() makes HTML elements; SVG needs its own namespace. */
function S(tag, attrs, children) {
	var el = document.createElementNS(SVG_NS, tag);

	Object.keys(attrs || {}).forEach(function(k) { el.setAttribute(k, attrs[k]); });
	(children || []).forEach(function(c) {
		el.appendChild(typeof c == 'string' ? document.createTextNode(c) : c);
	});

	return el;
}

/* Labels get a white halo so lines crossing them stay readable. */
function label(x, y, text, attrs) {
	return S('text', Object.assign({ 'x': x, 'y': y, 'text-anchor': 'middle', 'font-size': 12,
		'stroke': '#fff', 'stroke-width': 4, 'paint-order': 'stroke' }, attrs || {}), [ text ]);
}

/* This node in the middle, every advertising node around it; the line's colour is the tunnel state. */
function topology(st, peers) {
	var shown = peers.slice(0, 24), w = 560, h = (shown.length <= 2) ? 150 : 300,
	    cx = w / 2, cy = h / 2, rx = 190, ry = h / 2 - 40;
	var edges = [], nodes = [];
	/* first peer at the top (odd count) or half a step off it (even): none lands right below, on our label */
	var step = 2 * Math.PI / Math.max(shown.length, 1), start = -Math.PI / 2 + ((shown.length % 2) ? 0 : step / 2);

	shown.forEach(function(p, i) {
		var a = start + step * i,
		    x = cx + rx * Math.cos(a), y = cy + ry * Math.sin(a),
		    color = STATE_COLORS[p.state] || '#6b6b6b';

		edges.push(S('line', {
			'x1': cx, 'y1': cy, 'x2': x, 'y2': y, 'stroke': color, 'stroke-width': 3,
			'stroke-dasharray': (p.state == 'active') ? 'none' : '6 4'
		}));
		nodes.push(S('g', { 'data-node': p.short_id || '' }, [
			S('title', {}, [ '%s (%s): %s'.format(p.name || '?', p.short_id || '?', stateLabel(p.state)) ]),
			S('circle', { 'cx': x, 'cy': y, 'r': 16, 'fill': '#fff', 'stroke': color, 'stroke-width': 3 }),
			label(x, y + 32, p.name || p.short_id || '?')
		]));
	});

	var svg = S('svg', {
		'viewBox': '0 0 %d %d'.format(w, h), 'width': '100%', 'style': 'max-width:%dpx;height:auto'.format(w),
		'role': 'img', 'aria-label': _('Tunnel topology')
	}, edges.concat(nodes, [
		S('circle', { 'cx': cx, 'cy': cy, 'r': 24, 'fill': '#1565c0' }),
		label(cx, cy + 44, st.name || st.interface || _('this node'), { 'font-size': 13, 'font-weight': 'bold' })
	]));

	if (peers.length > shown.length)
		svg.appendChild(label(8, h - 8, _('and %d more').format(peers.length - shown.length), { 'text-anchor': 'start' }));

	var legend = [ 'active', 'pending', 'expired', 'rejected' ].map(function(state) {
		return E('span', { 'style': 'margin:0 .8em;white-space:nowrap' }, [
			E('span', { 'style': 'display:inline-block;width:18px;height:3px;vertical-align:middle;margin-right:.3em;background:' +
				STATE_COLORS[state] }), stateLabel(state)
		]);
	});

	return E('div', { 'class': 'bmx7wg-topology', 'style': 'margin:1em 0;text-align:center' }, [
		svg, E('div', { 'style': 'font-size:90%' }, legend)
	]);
}

function peerRows(peers) {
	return peers.map(function(p) {
		var stateCell = [ badge(p.state) ];
		if (p.reason)
			stateCell.push(E('br'), E('small', p.reason));

		return E('tr', { 'class': 'tr', 'data-node-id': p.node_id || '', 'data-state': p.state }, [
			E('td', { 'class': 'td', 'title': p.node_id || '' }, p.name || _('(unnamed)')),
			E('td', { 'class': 'td' }, E('code', p.short_id || '-')),
			E('td', { 'class': 'td', 'style': 'overflow-wrap:anywhere' }, p.endpoint || '-'),
			E('td', { 'class': 'td', 'style': 'overflow-wrap:anywhere' }, lines(p.addresses)),
			E('td', { 'class': 'td' }, lines(p.networks_accepted)),
			E('td', { 'class': 'td' }, stateCell),
			E('td', { 'class': 'td', 'style': 'white-space:nowrap' }, ago(p.latest_handshake)),
			E('td', { 'class': 'td', 'style': 'white-space:nowrap' }, '%s / %s'.format(bytes(p.rx), bytes(p.tx)))
		]);
	});
}

/* Whole adverts refused (state rejected) and single networks refused by the policy. */
function rejectedRows(peers) {
	var rows = [];

	peers.forEach(function(p) {
		var who = '%s (%s)'.format(p.name || _('(unnamed)'), p.short_id || '?');

		if (p.state == 'rejected')
			rows.push(E('tr', { 'class': 'tr', 'data-node-id': p.node_id || '' }, [
				E('td', { 'class': 'td' }, who),
				E('td', { 'class': 'td' }, E('em', _('whole advertisement'))),
				E('td', { 'class': 'td' }, p.reason || _('no reason given'))
			]));

		(p.networks_rejected || []).forEach(function(n) {
			rows.push(E('tr', { 'class': 'tr', 'data-node-id': p.node_id || '' }, [
				E('td', { 'class': 'td' }, who),
				E('td', { 'class': 'td' }, n.network),
				E('td', { 'class': 'td' }, n.reason || _('no reason given'))
			]));
		});
	});

	return rows;
}

function renderInterface(name, data) {
	var st = data.status || {}, pr = data.peers || {}, body = [];

	body.push(E('h3', _('Interface %s').format(name)));

	if (data.unreachable) {
		body.push(alertBox('warning', _('The bmx7wg helper is not running (ubus object bmx7wg unavailable: %s).').format(data.unreachable)));
		return E('div', { 'class': 'cbi-section', 'data-bmx7wg-iface': name }, body);
	}

	if (st.error) {
		body.push(alertBox('warning', _('The bmx7wg helper is not running for this interface: %s').format(st.error)));
		return E('div', { 'class': 'cbi-section', 'data-bmx7wg-iface': name }, body);
	}

	if (!st.interface) {   /* a ubus status code instead of a reply */
		body.push(alertBox('warning', _('The bmx7wg helper gave no status for this interface.')));
		return E('div', { 'class': 'cbi-section', 'data-bmx7wg-iface': name }, body);
	}

	if (!st.running)
		body.push(alertBox('warning', _('The bmx7wg helper of this interface has stopped; this is its last state.')));

	if (!st.bmx7 || !st.bmx7.running)
		body.push(alertBox('warning', _('bmx7 is not running: no tunnels can be learnt.')));

	var bmx7 = st.bmx7 || {};
	body.push(table([ _('Property'), _('Value') ], [
		field(_('Public key'), E('code', { 'data-bmx7wg-public-key': name, 'style': 'word-break:break-all' }, st.public_key || '-')),
		field(_('Listen port'), st.listen_port ? String(st.listen_port) : '-'),
		field(_('Tunnel addresses'), lines(st.addresses)),
		field(_('Announced networks'), lines(st.announce)),
		field(_('Node'), '%s (%s)'.format(st.name || '-', st.node_id ? st.node_id.substr(0, 8) : '-')),
		field(_('bmx7'), [
			bmx7.running ? _('running') : _('not running'),
			' · ', bmx7.published ? _('advertisement published') : _('advertisement not published'),
			' · ', _('sms %s in %s').format(bmx7.sms_name || '-', bmx7.dir || '-')
		]),
		field(_('Helper'), '%s · %s · %s'.format(st.running ? _('running') : _('stopped'),
			st.backend || '-', _('updated %s').format(ago(st.updated))))
	], '', { 'data-bmx7wg-status': name }));

	var peers = Array.isArray(pr.peers) ? pr.peers : [];

	if (pr.error)
		body.push(alertBox('warning', pr.error));

	if (peers.length)
		body.push(topology(st, peers));

	body.push(E('h4', _('Peers')));
	body.push(table([ _('Node'), _('Short ID'), _('Endpoint'), _('Tunnel addresses'), _('Accepted networks'),
		_('State'), _('Latest handshake'), _('RX / TX') ], peerRows(peers),
		_('No other node advertises yet.'), { 'data-bmx7wg-peers': name }));

	var rejected = rejectedRows(peers);
	if (rejected.length) {
		body.push(E('h4', _('Rejected advertisements')));
		body.push(table([ _('Node'), _('Network'), _('Reason') ], rejected, '', { 'data-bmx7wg-rejected': name }));
	}

	return E('div', { 'class': 'cbi-section', 'data-bmx7wg-iface': name }, body);
}

function unreachable(err) {
	return { unreachable: (err && err.message) ? err.message : String(err) };
}

function fetchInterface(name) {
	return Promise.all([ callStatus(name), callPeers(name) ]).then(function(res) {
		return { status: res[0], peers: res[1] };
	}, unreachable);
}

function configuredInterfaces() {
	return uci.sections('network', 'interface').filter(function(s) {
		return s.proto == 'bmx7wg';
	}).map(function(s) {
		return s['.name'];
	});
}

function fetchAll() {
	var names = configuredInterfaces();

	return Promise.all(names.map(fetchInterface)).then(function(results) {
		return names.map(function(name, i) { return { name: name, data: results[i] }; });
	});
}

function renderAll(list) {
	if (!list.length)
		return E('p', {}, E('em', _('No interface uses the bmx7wg protocol. Add one under Network → Interfaces.')));

	return list.map(function(entry) { return renderInterface(entry.name, entry.data); });
}

return view.extend({
	load: function() {
		return uci.load('network').then(fetchAll);
	},

	render: function(list) {
		var container = E('div', { 'id': 'bmx7wg-status' }, renderAll(list));

		poll.add(function() {
			return fetchAll().then(function(fresh) {
				dom.content(container, renderAll(fresh));
			});
		}, 5);

		return E([], [
			E('h2', _('BMX7 WireGuard tunnels')),
			E('div', { 'class': 'cbi-map-descr' },
				_('WireGuard tunnels this router keeps with the other nodes of the bmx7 mesh.')),
			container
		]);
	},

	handleSaveApply: null,
	handleSave: null,
	handleReset: null
});
