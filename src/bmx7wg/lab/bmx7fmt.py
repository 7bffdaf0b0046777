"""bmx7's json-plugin files and `show=` tables, shaped like real BMX7-0.2 output.

Field names, order and value styles are copied from the files a real mesh wrote
(../shared/bmx7/fixtures/nodeD-steady): json-c "spaced" layout with escaped
slashes, metrics as strings with K/M/G, the own node with dev "---" and hops 0.
Values bmx7 computes from crypto or radio state are constants here.
"""

from __future__ import annotations

import json
import math

VERSION = "BMX7-0.2"
CV = 21
REVISION = "9020896"
NODE_KEY = "RSA2048"
LINK_KEY = "DH2048M112"
LINK_KEYS = "RSA1024,DH2048M112"
NONE = "---"

SELF_METRIC = 257 * 10**9
ONE_HOP_METRIC = 999 * 10**6


def metric_for_hops(hops: int) -> int:
    """Path metric in bits/s. Matches the line capture: 1 hop 999M, 2 hops 706M, 3 hops 576M."""
    if hops <= 0:
        return SELF_METRIC
    return int(ONE_HOP_METRIC / math.sqrt(hops))


def human_metric(bits: int) -> str:
    if bits <= 0:
        return str(bits)
    for div, unit in ((10**9, "G"), (10**6, "M"), (10**3, "K")):
        if bits >= div:
            return f"{bits // div}{unit}"
    return str(bits)


def uptime(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 86400}:{s // 3600 % 24:02d}:{s // 60 % 60:02d}:{s % 60:02d}"


def dumps(obj) -> str:
    """json-c JSON_C_TO_STRING_SPACED with its default '/' escaping, plus the trailing newline."""
    return _dump(obj) + "\n"


def _dump(obj) -> str:
    if isinstance(obj, dict):
        if not obj:
            return "{ }"
        return "{ " + ", ".join(f"{_dump(str(k))}: {_dump(v)}" for k, v in obj.items()) + " }"
    if isinstance(obj, (list, tuple)):
        if not obj:
            return "[ ]"
        return "[ " + ", ".join(_dump(v) for v in obj) + " ]"
    if isinstance(obj, str):
        return json.dumps(obj).replace("/", "\\/")
    return json.dumps(obj)


def status(*, node_id: str, name: str, primary_ip: str, dhash: str, desc_sqn: int,
           last_desc: int, ogm_sqn: int, uptime_s: float, nbs: int, rts: int,
           nodes: int) -> dict:
    return {"status": {
        "shortId": node_id[:8], "nodeId": node_id, "name": name, "nodeKey": NODE_KEY,
        "linkKeys": LINK_KEYS, "shortDhash": dhash[:8], "dhash": dhash, "version": VERSION,
        "cv": CV, "revision": REVISION, "primaryIp": primary_ip, "tun6Address": NONE,
        "tun4Address": NONE, "descSqn": desc_sqn, "lastDesc": last_desc, "ogmSqn": ogm_sqn,
        "aggSize": 1, "aggMax": 1, "aggSend": 1, "uptime": uptime(uptime_s), "cpu": "0.1",
        "mem": "6540K", "txQ": "0/50", "rxBpP": "0/0.0", "txBpP": "0/0.0", "nbs": nbs,
        "rts": rts, "nodes": f"{nodes}/{nodes}", "descRefs": "12/12",
    }}


def originator(*, node_id: str, name: str, primary_ip: str, dhash: str, desc_sqn: int,
               last_desc: int, desc_size: int, own: bool, neighbor: bool, dev: str,
               nb_node_id: str, nb_name: str, nb_local_ip: str, hops: int, metric: int,
               ogm_sqn: int, last_ref: int, nbs: int, my_iid: int) -> dict:
    state = ("neighboringQualifying", "nQ") if own else (
        ("neighboringAlien", "nA") if neighbor else ("promotedAlien", "pA"))
    has_nb = nb_node_id != NONE
    return {
        "shortId": node_id[:8], "nodeId": node_id, "name": name,
        "assessedState": state[0], "as": state[1], "pref": 9999 if own else (5001 if neighbor else 1003),
        "brcTo": 19 if neighbor else 0, "signTo": 19 if neighbor else 0, "tAPTo": 0, "nQTo": 0,
        "friend": 3 if own else 0, "recom": 0, "trustees": 0, "S": "A", "s": "A", "T": "A", "t": "A",
        "myIid": my_iid, "shortDHash": dhash[:8], "descSqn": desc_sqn, "descSqnMin": desc_sqn,
        "lastDesc": last_desc, "descSize": f"640+{desc_size}", "descRefs": "12/12", "cv": str(CV),
        "revision": REVISION, "nodeKey": NODE_KEY, "linkKeys": LINK_KEYS, "primaryIp": primary_ip,
        "dev": dev, "myIdx": 1 if has_nb else 0, "nbIdx": 2 if has_nb else 0,
        "nbLocalIp": nb_local_ip if has_nb else "::", "nbShortId": nb_node_id[:8] if has_nb else NONE,
        "nbNodeId": nb_node_id, "nbName": nb_name, "metric": human_metric(metric), "ogmHist": "0/5",
        "hops": hops, "ogmSqn": ogm_sqn, "nbIid": my_iid if has_nb else 0, "lastRef": last_ref,
        "nbs": nbs,
    }


def link(*, node_id: str, name: str, nb_local_ip: str, local_ip: str, dev: str, idx: int,
         rts: int, hello_sqn: int) -> dict:
    return {
        "shortId": node_id[:8], "nodeId": node_id, "name": name, "nodeKey": NODE_KEY,
        "linkKey": LINK_KEY, "linkKeys": LINK_KEYS, "linkRsaPk": node_id[8:16],
        "linkDhmPk": node_id[16:24], "nbLocalIp": nb_local_ip, "nbIdx": 2, "localIp": local_ip,
        "dev": dev, "rts": rts, "idx": idx, "iidMax": 5, "aggSize": 1, "aggMax": 1, "aggRcvd": 1,
        "lastHelloSqn": hello_sqn, "lastHelloAdv": 0, "rq": 100, "bestRq": 1, "tq": 100,
        "bestTq": 1, "rxRate": "1000M", "txRate": "1000M", "wLastUpd": "-1.00", "wRxRate": "-1",
        "wRxCnt": 0, "wTxRate": "-1", "wTxRateAvg": "-1", "wTxRateEff": "-1", "wTxThr": "-1",
        "wTxThrAvg": "-1", "wTxThrEff": "-1", "cnt": 0, "mcs": "0", "sgi": 0, "chw": 20,
        "wTxLastProbe": "-1.00", "wTxProbe": 0, "wTxLastBurst": "-1.00", "wTxBurst": 0, "wSnr": "0",
    }


def interface(*, dev: str, idx: int, mac: str, local_ip: str, global_ip: str, rts: int,
              hello_sqn: int) -> dict:
    return {
        "dev": dev, "state": "UP", "linkKey": LINK_KEY, "linkKeys": LINK_KEYS, "phy": dev,
        "type": "ethernet", "channel": 0, "rateMax": "1000M", "idx": idx, "localMac": mac,
        "localIp": local_ip, "globalIp": global_ip, "multicastIp": "ff02::2", "rts": rts,
        "helloSqn": hello_sqn, "rxBpP": "0/0.0", "txBpP": "0/0.0", "txTasks": "0/200",
    }


def description(*, dhash: str, boot_sqn: int, desc_sqn: int, desc_size: int, local_ip: str,
                primary_ip: str, name: str, sms_names: list[str]) -> dict:
    """A reduced json/descriptions/<NODEID>: the extensions a reader could act on."""
    return {"descSha": dhash, "extensions": [
        {"DSC_VERSION": [{"comp_version": CV, "capabilities": "2", "bootSqn": boot_sqn,
                          "descSqn": desc_sqn, "ogmSqnRange": 6000, "descSize": desc_size,
                          "descContents": 12}]},
        {"DSC_LLIP": [{"address": local_ip}]},
        {"DSC_HNA6": [{"prefixLen": 128, "address": primary_ip}]},
        {"DSC_INFO": [{"type": 0, "infoOffset": 20, "codeRevision": "0" + REVISION,
                       "nameLen": len(name), "mailLen": 0,
                       "variableInfoFields": name.encode().hex().upper()}]},
        {"DSC_SMS": [{"name": n} for n in sms_names]},
    ]}


TABLE_COLUMNS = {
    "status": ("STATUS", "shortId name nodeKey cv revision primaryIp tun6Address tun4Address "
                         "uptime cpu txQ nbs rts nodes"),
    "originators": ("ORIGINATORS", "shortId name as S s T t descSqn lastDesc descSize cv revision "
                                   "primaryIp dev nbShortId nbName metric hops ogmSqn lastRef"),
    "interfaces": ("INTERFACES", "dev state linkKey linkKeys type channel rateMax idx localIp rts "
                                 "helloSqn rxBpP txBpP"),
    "links": ("LINKS", "shortId name linkKey linkKeys nbLocalIp dev rts rq tq txRate wTxRate "
                       "wTxRateEff wTxThr wTxThrEff mcs sgi chw wSnr"),
}


def table(kind: str, rows: list[dict]) -> str:
    """`bmx7 -c show=<kind>`: left-aligned columns, one trailing space per line."""
    title, columns = TABLE_COLUMNS[kind]
    cols = columns.split()
    cells = [cols] + [[str(row.get(c, "")) for c in cols] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(cols))]
    lines = [f"{title}:"]
    for r in cells:
        lines.append("".join(f"{v:<{w}} " for v, w in zip(r, widths)))
    return "\n".join(lines) + "\n"


def parameters_table(params: list[tuple[str, str, str | None]]) -> str:
    """`bmx7 -c parameters`: (name, value, child-of) rows as the daemon lists its options."""
    lines = ["PARAMETERS:"]
    for name, value, _parent in params:
        if name.startswith("/"):
            lines.append(f"    {name:<19} {value} ({value}) ")
        elif "/" in value:
            lines.append(f" {name:<22} {value} ({value}) ")
        else:
            lines.append(f" {name:<22} {value:<20} (0) ")
    return "\n".join(lines) + "\n"


def parameters_json(params: list[tuple[str, str, str | None]]) -> dict:
    options: list[dict] = []
    by_name: dict[str, dict] = {}
    last_instance: dict | None = None
    for name, value, parent in params:
        if parent is not None and last_instance is not None:
            last_instance.setdefault("CHILD_INSTANCES", []).append({"name": name.lstrip("/"), "value": value})
            continue
        opt = by_name.get(name)
        if opt is None:
            opt = by_name[name] = {"name": name, "INSTANCES": []}
            options.append(opt)
        last_instance = {"value": value}
        opt["INSTANCES"].append(last_instance)
    return {"OPTIONS": options}
