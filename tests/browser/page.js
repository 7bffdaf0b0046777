/* Boots one of our LuCI files the way LuCI would: ?page=status or ?page=proto&iface=NAME. */
(function() {
	'use strict';

	var args = new URLSearchParams(window.location.search);
	L.env.sessionid = args.get('sid') || '';

	function protoPage(iface) {
		document.getElementById('crumbs').textContent = 'Network › Interfaces › ' + iface;
		window.__viewReady = L.require('protocol.bmx7wg').then(function() {
			return Promise.all([ L.require('form'), L.require('network'), L.require('ui') ]);
		}).then(function(mods) {
			var form = mods[0], network = mods[1], ui = mods[2];
			var proto = network.getProtocol('bmx7wg', iface);
			var m = new form.Map('network', 'Interface ' + iface + ' (' + proto.getI18n() + ')');
			var s = m.section(form.NamedSection, iface, 'interface');
			s.tab('general', 'General Settings');
			s.tab('advanced', 'Advanced Settings');
			proto.renderFormOptions(s);
			window.__map = m;
			return m.render().then(function(node) {
				var save = E('button', { 'class': 'btn cbi-button-save', 'id': 'save' }, 'Save');
				save.addEventListener('click', function() {
					m.save().then(function() {
						ui.addNotification(null, E('p', 'Saved'), 'saved');
					}, function(err) {
						ui.addNotification(null, E('p', err.message), 'danger invalid');
					});
				});
				var vp = document.getElementById('view');
				while (vp.firstChild) vp.removeChild(vp.firstChild);
				vp.appendChild(node);
				vp.appendChild(E('div', { 'class': 'cbi-page-actions' }, [ save ]));
				document.body.setAttribute('data-view-ready', '1');
			});
		}).catch(function(err) {
			document.getElementById('view').textContent = String(err && err.stack || err);
			document.body.setAttribute('data-view-ready', 'error');
		});
	}

	if (args.get('page') == 'proto') {
		protoPage(args.get('iface'));
	}
	else {
		document.getElementById('crumbs').textContent = 'Status › BMX7 WireGuard';
		L.require('view.bmx7wg.status').catch(function(err) {
			document.getElementById('view').textContent = String(err && err.stack || err);
			document.body.setAttribute('data-view-ready', 'error');
		});
	}
})();
