/*
 * Runs the protocol form's validators under node, for the parity test with config.py.
 *   node validators_driver.js PROTOCOL_JS < cases.json > results.json
 * cases: [{"option": "listen_port", "value": "51820", "ctx": {...} | null}, ...]
 * results: [true | "error text", ...]
 * The file is loaded like LuCI loads it: its body becomes a function of its 'require's.
 */
'use strict';

const fs = require('fs');

const source = fs.readFileSync(process.argv[2], 'utf8');
const names = [];
source.replace(/^[ \t]*(['"])require[ \t]+(\S+)(?:[ \t]+as[ \t]+([a-zA-Z_]\S*))?\1;?[ \t]*$/gm, (m, q, dep, as) => {
	names.push(as || dep);
	return m;
});

global._ = (s) => s;
String.prototype.format = function() {
	const args = Array.from(arguments);
	return String(this).replace(/%(%|s|d)/g, (m, c) => c == '%' ? '%' : c == 'd' ? String(parseInt(args.shift(), 10)) : String(args.shift()));
};

const stubClass = { extend: (props) => props };
const modules = {
	ui: {},
	rpc: { declare: () => () => Promise.resolve({}) },
	form: { DummyValue: stubClass, Button: stubClass },
	network: { registerProtocol: (name, methods) => methods },
};

const proto = new Function(names.join(','), source).apply(null, names.map((n) => modules[n]));
const cases = JSON.parse(fs.readFileSync(0, 'utf8'));
const results = cases.map((c) => proto.validators[c.option](c.value, c.ctx || null));
process.stdout.write(JSON.stringify(results));
