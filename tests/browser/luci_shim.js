/*
 * A small stand-in for the LuCI client API that our views use (L, E, _, rpc, uci, poll,
 * view, dom, ui, form, network), written for the browser tests. It is not LuCI: it keeps
 * LuCI's calling conventions (module loading with 'require' lines, rpc.declare over
 * ubus JSON-RPC, expect/reject handling, form option hooks) and nothing more.
 */
(function(window, document) {
	'use strict';

	var msgids = window.__msgids = {};          /* every _() string our views used */
	var pollIntervals = window.__pollIntervals = [];

	window._ = function(s) {
		msgids[s] = true;
		return s;
	};

	String.prototype.format = function() {
		var args = arguments, i = 0;
		return String(this).replace(/%(%|s|d)/g, function(m, c) {
			if (c == '%')
				return '%';
			var v = args[i++];
			return (c == 'd') ? String(parseInt(v, 10)) : String(v);
		});
	};

	/* ---- classes ------------------------------------------------------------------- */

	function Class() {}

	Class.extend = function(props) {
		var Base = this;
		var Ctor = function() {
			if (typeof this.__init__ == 'function')
				this.__init__.apply(this, arguments);
		};
		Ctor.prototype = Object.create(Base.prototype);
		Object.keys(props || {}).forEach(function(k) { Ctor.prototype[k] = props[k]; });
		Ctor.prototype.constructor = Ctor;
		Ctor.extend = Class.extend;
		Ctor.isShimClass = true;
		return Ctor;
	};

	/* ---- DOM ------------------------------------------------------------------------ */

	function append(el, child) {
		if (child == null || child === false)
			return;
		if (Array.isArray(child))
			child.forEach(function(c) { append(el, c); });
		else if (child instanceof Node)
			el.appendChild(child);
		else
			el.appendChild(document.createTextNode(String(child)));
	}

	function E(tag, attrs, children) {
		var el;

		if (attrs == null || typeof attrs != 'object' || Array.isArray(attrs) || attrs instanceof Node) {
			children = attrs;
			attrs = null;
		}

		if (Array.isArray(tag)) {
			el = document.createDocumentFragment();
			append(el, tag);
		}
		else if (tag instanceof Node) {
			el = tag;
		}
		else {
			el = document.createElement(tag);
		}

		Object.keys(attrs || {}).forEach(function(k) {
			var v = attrs[k];
			if (typeof v == 'function')
				el.addEventListener(k, v);
			else if (v != null && v !== false)
				el.setAttribute(k, (typeof v == 'object') ? JSON.stringify(v) : String(v));
		});

		append(el, children);
		return el;
	}

	window.E = E;

	var dom = {
		content: function(node, children) {
			while (node.firstChild)
				node.removeChild(node.firstChild);
			append(node, children);
			return node;
		},
		append: function(node, children) {
			append(node, children);
			return node;
		}
	};

	/* ---- ubus JSON-RPC ------------------------------------------------------------------ */

	var rpcId = 1;

	function post(url, body) {
		return new Promise(function(resolve, reject) {
			var xhr = new XMLHttpRequest();
			xhr.open('POST', url, true);
			xhr.setRequestHeader('Content-Type', 'application/json');
			xhr.onload = function() {
				if (xhr.status < 200 || xhr.status > 299)
					return reject(new Error('HTTP error %d'.format(xhr.status)));
				try { resolve(JSON.parse(xhr.responseText)); }
				catch (e) { reject(e); }
			};
			xhr.onerror = function() { reject(new Error('XHR failed')); };
			xhr.send(JSON.stringify(body));
		});
	}

	var rpc = {
		declare: function(opts) {
			return function() {
				var args = arguments, params = {};

				(opts.params || []).forEach(function(name, i) { params[name] = args[i]; });

				var msg = {
					jsonrpc: '2.0',
					id: rpcId++,
					method: 'call',
					params: [ L.env.sessionid, opts.object, opts.method, params ]
				};

				return post(L.env.ubuspath, msg).then(function(reply) {
					var type = Object.prototype.toString, ret = null;

					if (!reply || reply.jsonrpc != '2.0')
						throw new Error('RPC call to %s/%s returned invalid message frame'.format(opts.object, opts.method));

					if (reply.error)
						throw new Error('RPC call to %s/%s failed with error %d: %s'.format(
							opts.object, opts.method, reply.error.code, reply.error.message));

					if (Array.isArray(reply.result)) {
						if (opts.reject && reply.result[0] !== 0)
							throw new Error('RPC call to %s/%s failed with ubus code %d'.format(
								opts.object, opts.method, reply.result[0]));
						ret = (reply.result.length > 1) ? reply.result[1] : reply.result[0];
					}

					for (var key in (opts.expect || {})) {
						if (ret != null && key != '')
							ret = ret[key];
						if (ret == null || type.call(ret) != type.call(opts.expect[key]))
							ret = opts.expect[key];
						break;
					}

					return (typeof opts.filter == 'function') ? opts.filter(ret, params) : ret;
				});
			};
		}
	};

	/* ---- uci -------------------------------------------------------------------------- */

	var uciGet = rpc.declare({ object: 'uci', method: 'get', params: [ 'config' ], expect: { values: {} } });
	var uciSet = rpc.declare({ object: 'uci', method: 'set', params: [ 'config', 'section', 'values' ] });
	var uciDelete = rpc.declare({ object: 'uci', method: 'delete', params: [ 'config', 'section', 'options' ] });

	var uci = {
		values: {},
		changes: [],

		load: function(config) {
			var self = this;
			return uciGet(config).then(function(values) { self.values[config] = values; });
		},

		sections: function(config, type) {
			var all = this.values[config] || {};
			return Object.keys(all).map(function(k) { return all[k]; }).filter(function(s) {
				return type == null || s['.type'] == type;
			}).sort(function(a, b) { return (a['.index'] || 0) - (b['.index'] || 0); });
		},

		get: function(config, sid, option) {
			var s = (this.values[config] || {})[sid];
			return s ? (option == null ? s : s[option]) : null;
		},

		set: function(config, sid, option, value) {
			this.changes.push([ 'set', config, sid, option, value ]);
		},

		unset: function(config, sid, option) {
			this.changes.push([ 'unset', config, sid, option ]);
		},

		save: function() {
			var calls = this.changes.map(function(c) {
				if (c[0] == 'set') {
					var values = {};
					values[c[3]] = c[4];
					return uciSet(c[1], c[2], values);
				}
				return uciDelete(c[1], c[2], [ c[3] ]);
			});
			this.changes = [];
			return Promise.all(calls);
		}
	};

	/* ---- poll, ui ------------------------------------------------------------------------ */

	var poll = {
		add: function(fn, interval) {
			var busy = false;
			pollIntervals.push(interval);
			window.setInterval(function() {
				if (busy)
					return;
				busy = true;
				Promise.resolve(fn()).catch(function(e) { console.error(e); }).then(function() { busy = false; });
			}, interval * 1000);
			return true;
		}
	};

	var ui = {
		addNotification: function(title, children, cls) {
			var box = E('div', { 'class': 'alert-message notification ' + (cls || '') }, children);
			document.getElementById('notifications').appendChild(box);
			return box;
		},

		createHandlerFn: function(ctx, fn) {
			var extra = Array.prototype.slice.call(arguments, 2);
			return function(ev) { return fn.apply(ctx, extra.concat([ ev ])); };
		}
	};

	/* ---- view ------------------------------------------------------------------------- */

	var View = Class.extend({
		__init__: function() {
			var self = this, vp = document.getElementById('view');
			dom.content(vp, E('div', { 'class': 'spinning' }, 'Loading view…'));
			window.__viewReady = Promise.resolve(this.load()).then(function(data) {
				return self.render(data);
			}).then(function(nodes) {
				dom.content(vp, nodes);
				var buttons = [];
				if (self.handleSaveApply) buttons.push(E('button', { 'class': 'btn cbi-button-apply' }, 'Save & Apply'));
				if (self.handleSave) buttons.push(E('button', { 'class': 'btn cbi-button-save' }, 'Save'));
				if (self.handleReset) buttons.push(E('button', { 'class': 'btn cbi-button-reset' }, 'Reset'));
				if (buttons.length)
					vp.appendChild(E('div', { 'class': 'cbi-page-actions' }, buttons));
				document.body.setAttribute('data-view-ready', '1');
			}).catch(function(err) {
				dom.content(vp, E('div', { 'class': 'alert-message error', 'id': 'view-error' }, String(err && err.stack || err)));
				document.body.setAttribute('data-view-ready', 'error');
			});
		},
		load: function() {},
		render: function() {},
		handleSaveApply: function() {},
		handleSave: function() {},
		handleReset: function() {}
	});

	var view = { extend: function(props) { return View.extend(props); } };

	/* ---- form ----------------------------------------------------------------------------- */

	var AbstractValue = Class.extend({
		__init__: function(map, section, option, title, description) {
			this.map = map;
			this.section = section;
			this.option = option;
			this.title = title;
			this.description = description;
			this.deps = [];
			this.data = {};
		},

		depends: function(field, value) {
			var d = {};
			d[field] = value;
			this.deps.push(d);
		},

		cbid: function(sid) {
			return 'cbid.%s.%s.%s'.format(this.map.config, sid, this.option);
		},

		load: function(sid) {
			return uci.get(this.map.config, sid, this.option);
		},

		cfgvalue: function(sid, value) {
			if (arguments.length > 1)
				this.data[sid] = value;
			return this.data[sid];
		},

		initial: function(sid) {
			var v = this.cfgvalue(sid);
			return (v == null) ? this.default : v;
		},

		input: function(sid) {
			return document.getElementById(this.cbid(sid));
		},

		formvalue: function(sid) {
			var el = this.input(sid);
			return el ? el.value : this.initial(sid);
		},

		validate: function() {
			return true;
		},

		check: function(sid, value, el) {
			var res = this.validate(sid, value == null ? '' : value);
			var err = document.getElementById(this.cbid(sid) + '-error');
			if (el)
				el.classList.toggle('cbi-input-invalid', res !== true);
			if (err)
				err.textContent = (res === true) ? '' : String(res);
			return res;
		},

		isValid: function(sid) {
			return this.check(sid, this.formvalue(sid), this.input(sid)) === true;
		},

		isActive: function(sid) {
			if (!this.deps.length)
				return true;
			var section = this.section;
			return this.deps.some(function(d) {
				return Object.keys(d).every(function(k) {
					var v = section.formvalue(sid, k);
					return String(v == null ? '' : v) == String(d[k]);
				});
			});
		},

		write: function(sid, value) {
			uci.set(this.map.config, sid, this.option, value);
		},

		remove: function(sid) {
			uci.unset(this.map.config, sid, this.option);
		},

		parse: function(sid) {
			if (!this.isActive(sid))
				return;
			var v = this.formvalue(sid), old = this.cfgvalue(sid);
			if (v === '' || v == null) {
				if (old != null)
					this.remove(sid);
			}
			else if (String(v) !== String(old == null ? '' : old)) {
				this.write(sid, v);
			}
		},

		renderWidget: function(sid) {
			var self = this, init = this.initial(sid);
			var el = E('input', {
				'type': 'text', 'class': 'cbi-input-text', 'id': this.cbid(sid),
				'placeholder': this.placeholder, 'value': (init == null) ? '' : init
			});
			[ 'input', 'blur', 'keyup' ].forEach(function(evname) {
				el.addEventListener(evname, function() { self.check(sid, el.value, el); });
			});
			return el;
		},

		render: function(sid) {
			var widget = this.renderWidget(sid, 0, this.cfgvalue(sid));
			return E('div', { 'class': 'cbi-value', 'data-name': this.option, 'id': 'cbi-%s-%s-%s'.format(this.map.config, sid, this.option) }, [
				E('label', { 'class': 'cbi-value-title', 'for': this.cbid(sid) }, this.title || ''),
				E('div', { 'class': 'cbi-value-field' }, [
					widget,
					E('div', { 'class': 'cbi-value-error', 'id': this.cbid(sid) + '-error' }),
					this.description ? E('div', { 'class': 'cbi-value-description' }, this.description) : null
				])
			]);
		}
	});

	var Value = AbstractValue.extend({});

	var ListValue = AbstractValue.extend({
		__init__: function() {
			AbstractValue.prototype.__init__.apply(this, arguments);
			this.keylist = [];
			this.vallist = [];
		},

		value: function(key, label) {
			this.keylist.push(key);
			this.vallist.push(label || key);
		},

		renderWidget: function(sid) {
			var self = this, init = this.initial(sid);
			var el = E('select', { 'class': 'cbi-input-select', 'id': this.cbid(sid) }, this.keylist.map(function(k, i) {
				return E('option', { 'value': k, 'selected': (k == init) ? 'selected' : null }, self.vallist[i]);
			}));
			el.addEventListener('change', function() { self.check(sid, el.value, el); self.map.updateDepends(sid); });
			return el;
		}
	});

	var Flag = AbstractValue.extend({
		enabled: '1',
		disabled: '0',

		formvalue: function(sid) {
			var el = this.input(sid);
			if (!el) {
				var v = this.initial(sid);
				return (v == null) ? this.disabled : v;
			}
			return el.checked ? this.enabled : this.disabled;
		},

		parse: function(sid) {
			var v = this.formvalue(sid), old = this.cfgvalue(sid);
			if (old == null && v == (this.default == null ? this.disabled : this.default))
				return;
			if (v !== old)
				this.write(sid, v);
		},

		renderWidget: function(sid) {
			var self = this, init = this.initial(sid);
			var el = E('input', { 'type': 'checkbox', 'class': 'cbi-input-checkbox', 'id': this.cbid(sid),
				'checked': (init == this.enabled) ? 'checked' : null });
			el.addEventListener('change', function() { self.map.updateDepends(sid); });
			return el;
		}
	});

	var DynamicList = AbstractValue.extend({
		items: function(sid) {
			var box = document.getElementById(this.cbid(sid));
			if (!box) {
				var v = this.initial(sid);
				return Array.isArray(v) ? v : (v ? [ v ] : []);
			}
			return Array.prototype.map.call(box.querySelectorAll('.item'), function(i) { return i.getAttribute('data-value'); });
		},

		formvalue: function(sid) {
			return this.items(sid);
		},

		isValid: function(sid) {
			var add = document.getElementById(this.cbid(sid) + '-add');
			return !add || add.value === '' || this.check(sid, add.value, add) === true;
		},

		parse: function(sid) {
			var v = this.formvalue(sid), old = this.cfgvalue(sid);
			old = Array.isArray(old) ? old : (old ? [ old ] : []);
			if (!v.length) {
				if (old.length)
					this.remove(sid);
			}
			else if (JSON.stringify(v) != JSON.stringify(old)) {
				this.write(sid, v);
			}
		},

		renderItem: function(value) {
			var item = E('div', { 'class': 'item', 'data-value': value }, [ E('span', value) ]);
			item.appendChild(E('button', { 'class': 'btn remove', 'type': 'button', 'click': function() { item.remove(); } }, '×'));
			return item;
		},

		renderWidget: function(sid) {
			var self = this, init = this.initial(sid);
			var values = Array.isArray(init) ? init : (init ? [ init ] : []);
			var box = E('div', { 'class': 'cbi-dynlist', 'id': this.cbid(sid) }, values.map(this.renderItem));
			var add = E('input', { 'type': 'text', 'class': 'cbi-input-text', 'id': this.cbid(sid) + '-add', 'placeholder': this.placeholder });
			var addItem = function() {
				if (add.value === '' || self.check(sid, add.value, add) !== true)
					return;
				box.appendChild(self.renderItem(add.value));
				add.value = '';
			};
			add.addEventListener('keyup', function(ev) {
				if (ev.key == 'Enter')
					return addItem();
				self.check(sid, add.value, add);
			});
			return E('div', {}, [ box, add, E('button', { 'class': 'btn cbi-button-add', 'type': 'button', 'id': this.cbid(sid) + '-addbtn', 'click': addItem }, '+') ]);
		}
	});

	var DummyValue = AbstractValue.extend({
		renderWidget: function(sid, index, cfgvalue) {
			return E('div', { 'id': this.cbid(sid) }, (cfgvalue == null) ? '' : String(cfgvalue));
		},
		isValid: function() { return true; },
		parse: function() {}
	});

	var Button = AbstractValue.extend({
		renderWidget: function(sid) {
			var self = this;
			return E('button', { 'type': 'button', 'class': 'btn cbi-button cbi-button-' + (this.inputstyle || 'button'), 'id': this.cbid(sid),
				'click': function(ev) { return self.onclick ? self.onclick(ev, sid) : null; } }, this.inputtitle || this.title);
		},
		isValid: function() { return true; },
		parse: function() {}
	});

	var NamedSection = Class.extend({
		__init__: function(map, sid, type) {
			this.map = map;
			this.section = sid;
			this.sectiontype = type;
			this.tabs = [];
			this.children = [];
		},

		tab: function(name, title) {
			this.tabs.push({ name: name, title: title, children: [] });
		},

		taboption: function(tabname, cls, name, title, description) {
			var o = new cls(this.map, this, name, title, description);
			var tab = this.tabs.filter(function(t) { return t.name == tabname; })[0];
			if (!tab)
				throw new Error('no tab ' + tabname);
			tab.children.push(o);
			this.children.push(o);
			return o;
		},

		getOption: function(name) {
			return this.children.filter(function(o) { return o.option == name; })[0] || null;
		},

		formvalue: function(sid, name) {
			var o = this.getOption(name);
			return o ? o.formvalue(sid) : null;
		},

		load: function() {
			var sid = this.section;
			return Promise.all(this.children.map(function(o) {
				return Promise.resolve(o.load(sid)).then(function(v) { o.cfgvalue(sid, v); });
			}));
		},

		render: function() {
			var sid = this.section;
			var menu = E('ul', { 'class': 'cbi-tabmenu' }), panes = [];

			this.tabs.forEach(function(t, i) {
				var pane = E('div', { 'class': 'cbi-tab', 'data-tab': t.name, 'style': i ? 'display:none' : '' },
					t.children.map(function(o) { return o.render(sid); }));
				var li = E('li', { 'class': i ? 'cbi-tab-disabled' : 'cbi-tab', 'data-tab': t.name }, E('a', { 'href': '#' }, t.title));
				li.addEventListener('click', function(ev) {
					ev.preventDefault();
					menu.querySelectorAll('li').forEach(function(x) { x.className = (x === li) ? 'cbi-tab' : 'cbi-tab-disabled'; });
					panes.forEach(function(p) { p.style.display = (p === pane) ? '' : 'none'; });
				});
				menu.appendChild(li);
				panes.push(pane);
			});

			return E('div', { 'class': 'cbi-section', 'data-section': sid }, [ menu ].concat(panes));
		}
	});

	var Map = Class.extend({
		__init__: function(config, title, description) {
			this.config = config;
			this.title = title;
			this.description = description;
			this.sections = [];
		},

		section: function(cls) {
			var s = new cls(this, arguments[1], arguments[2]);
			this.sections.push(s);
			return s;
		},

		updateDepends: function(sid) {
			this.sections.forEach(function(s) {
				s.children.forEach(function(o) {
					var row = document.getElementById('cbi-%s-%s-%s'.format(o.map.config, sid, o.option));
					if (row)
						row.style.display = o.isActive(sid) ? '' : 'none';
				});
			});
		},

		render: function() {
			var self = this;
			return uci.load(this.config).then(function() {
				return Promise.all(self.sections.map(function(s) { return s.load(); }));
			}).then(function() {
				var node = E('div', { 'class': 'cbi-map', 'id': 'cbi-' + self.config }, [
					self.title ? E('h2', self.title) : null,
					self.sections.map(function(s) { return s.render(); })
				]);
				window.setTimeout(function() { self.sections.forEach(function(s) { self.updateDepends(s.section); }); }, 0);
				return node;
			});
		},

		/* Like LuCI: refuse to save while any active field is invalid, else write the changes. */
		save: function() {
			var invalid = [];
			this.sections.forEach(function(s) {
				s.children.forEach(function(o) {
					if (o.isActive(s.section) && !o.isValid(s.section))
						invalid.push(o.option);
				});
			});
			if (invalid.length)
				return Promise.reject(new Error('Some fields are invalid: ' + invalid.join(', ')));
			this.sections.forEach(function(s) {
				s.children.forEach(function(o) { o.parse(s.section); });
			});
			return uci.save();
		}
	});

	var form = {
		Map: Map, NamedSection: NamedSection, Value: Value, ListValue: ListValue, Flag: Flag,
		DynamicList: DynamicList, DummyValue: DummyValue, Button: Button
	};

	/* ---- network ----------------------------------------------------------------------- */

	var protocols = {};

	var Protocol = Class.extend({
		__init__: function(sid) {
			this.sid = sid;
		},
		_ubus: function() {
			return null;
		}
	});

	var network = {
		registerProtocol: function(name, methods) {
			var cls = Protocol.extend(methods);
			protocols[name] = cls;
			return cls;
		},
		getProtocol: function(name, sid) {
			return protocols[name] ? new protocols[name](sid) : null;
		},
		getIfnameOf: function(x) {
			return String(x);
		}
	};

	/* ---- L and module loading ---------------------------------------------------------- */

	var builtins = { view: view, rpc: rpc, uci: uci, poll: poll, dom: dom, ui: ui, form: form, network: network,
		baseclass: { extend: Class.extend } };
	var modules = {};
	var REQUIRE_RE = /^[ \t]*(['"])require[ \t]+(\S+)(?:[ \t]+as[ \t]+([a-zA-Z_]\S*))?\1;?[ \t]*$/gm;

	var L = window.L = {
		env: { sessionid: '', ubuspath: '/ubus' },

		bind: function(fn, ctx) {
			var extra = Array.prototype.slice.call(arguments, 2);
			return function() { return fn.apply(ctx, extra.concat(Array.prototype.slice.call(arguments))); };
		},

		isObject: function(v) {
			return v != null && typeof v == 'object';
		},

		resolveDefault: function(p, def) {
			return Promise.resolve(p).catch(function() { return def; });
		},

		require: function(name) {
			if (builtins[name])
				return Promise.resolve(builtins[name]);
			if (modules[name])
				return modules[name];

			var url = '/luci-static/resources/' + name.replace(/\./g, '/') + '.js';
			modules[name] = fetch(url).then(function(res) {
				if (!res.ok)
					throw new Error('cannot load ' + url + ': HTTP ' + res.status);
				return res.text();
			}).then(function(source) {
				var deps = [], names = [], m;
				REQUIRE_RE.lastIndex = 0;
				while ((m = REQUIRE_RE.exec(source)) != null) {
					deps.push(m[2]);
					names.push(m[3] || m[2]);
				}
				return Promise.all(deps.map(L.require)).then(function(instances) {
					var factory = new Function(names.join(','), source + '\n//# sourceURL=' + url);
					var result = factory.apply(window, instances);
					/* LuCI instantiates a module that returns a class (views run on construction). */
					return (typeof result == 'function' && result.isShimClass) ? new result() : result;
				});
			});
			return modules[name];
		}
	};
})(window, document);
