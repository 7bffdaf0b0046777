// ESLint (v9 flat config) for the LuCI app and the browser-test JavaScript.
// CI: `npm install --no-save eslint@9` in the repo root, then tests/test_luci_lint.py runs it.
// Self-contained (no plugin imports), so it works from any node_modules.

const browser = {
	window: 'readonly', document: 'readonly', console: 'readonly', Node: 'readonly', Promise: 'readonly',
	XMLHttpRequest: 'readonly', fetch: 'readonly', URLSearchParams: 'readonly', KeyboardEvent: 'readonly',
	Event: 'readonly', JSON: 'readonly'
};

const rules = {
	'no-undef': 'error',
	'no-unused-vars': [ 'error', { args: 'none' } ],
	'no-redeclare': 'error',
	'no-dupe-keys': 'error',
	'no-duplicate-case': 'error',
	'no-unreachable': 'error',
	'no-unsafe-finally': 'error',
	'no-func-assign': 'error',
	'no-self-assign': 'error',
	'no-sparse-arrays': 'error',
	'no-cond-assign': [ 'error', 'except-parens' ],
	'no-constant-condition': 'error',
	'no-empty': 'error',
	'no-extra-semi': 'off',
	'valid-typeof': 'error',
	'use-isnan': 'error',
	'no-shadow-restricted-names': 'error',
	'no-global-assign': 'error'
};

export default [
	{
		// LuCI modules: a function body (top-level return), 'require' directives, LuCI globals.
		files: [ 'luci-app-bmx7-wgtun/htdocs/**/*.js' ],
		languageOptions: {
			ecmaVersion: 2017,
			sourceType: 'commonjs',
			// the names its 'require' lines bind (a missing 'require' fails the browser tests)
			globals: { ...browser, L: 'readonly', E: 'readonly', _: 'readonly', N_: 'readonly',
				ui: 'readonly', rpc: 'readonly', form: 'readonly', network: 'readonly', uci: 'readonly',
				view: 'readonly', poll: 'readonly', dom: 'readonly' }
		},
		rules: { ...rules, 'no-unused-expressions': [ 'error', { allowShortCircuit: false } ] }
	},
	{
		files: [ 'tests/browser/luci_shim.js', 'tests/browser/page.js' ],
		languageOptions: {
			ecmaVersion: 2017,
			sourceType: 'script',
			globals: { ...browser, L: 'writable', E: 'writable', _: 'writable' }
		},
		rules
	},
	{
		files: [ 'tests/browser/validators_driver.js' ],
		languageOptions: {
			ecmaVersion: 2020,
			sourceType: 'commonjs',
			globals: { require: 'readonly', process: 'readonly', global: 'writable', console: 'readonly' }
		},
		rules
	}
];
