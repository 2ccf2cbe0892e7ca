// kapl-run report: renders the page's JSON blob (#kapl-data). Every string
// from the audit goes into the page as a text node (textContent), never
// as markup; lists render when opened.
"use strict";
(function () {
  var D = JSON.parse(document.getElementById("kapl-data").textContent);
  var SMALL = D.stats.decisions <= 2000;

  function el(tag, cls) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c == null) continue;
      e.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
    }
    return e;
  }
  function ms(n) {
    if (n < 1000) return n + " ms";
    if (n < 120000) return (n / 1000).toFixed(1) + " s";
    return Math.round(n / 60000) + " min";
  }
  function counts(a, d) {
    var s = el("span", "counts");
    s.appendChild(el("b", "allow", String(a)));
    s.appendChild(document.createTextNode(" allowed, "));
    s.appendChild(el("b", "deny", String(d)));
    s.appendChild(document.createTextNode(" denied"));
    return s;
  }
  function procName(p) {
    var parts = [];
    if (p.pid != null) parts.push("pid " + p.pid);
    if (p.comm) parts.push(p.comm);
    if (p.exe && p.exe.split("/").pop() !== p.comm) parts.push(p.exe);
    return parts.join(" · ");
  }
  function grantBlock(g) {
    var b = el("div", null, el("code", null, g.text));
    var where = "at " + g.source;
    if (g.site && g.source.indexOf(g.site) !== 0) where += ", used at " + g.site;
    if (g.id != null) where += " (grant " + g.id + ")";
    b.appendChild(el("div", "src", where));
    return b;
  }
  function detail(x) {
    var r = D.details[x];
    var card = el("div", "card");
    if (!r) {
      card.appendChild(el("span", "note", "this decision's details were not kept"));
      return card;
    }
    var head = el("div", null, el("span", "verdict " + (r.deny ? "deny" : "allow"), r.deny ? "denied" : "allowed"), " ",
      el("b", null, r.operation), " ", el("code", null, r.object));
    card.appendChild(head);
    var dl = el("dl", "d");
    function row(k, v) {
      if (v == null || v === "") return;
      dl.appendChild(el("dt", null, k));
      dl.appendChild(el("dd", null, v));
    }
    row("time", r.time + (r.n > 1 ? "  (" + r.n + " records alike in this step; the first shown)" : ""));
    row("process", procName(r));
    if (r.learned) row("name", r.learned + " (the address was learned from this name)");
    row("mechanism", r.mechanism);
    if (r.grant) row(r.deny ? "grant" : "allowed by", grantBlock(r.grant));
    if (r.covering) row("covering grant", grantBlock(r.covering));
    row(r.deny ? "why" : "note", r.reason);
    if (r.nearest) {
      var n = grantBlock(r.nearest);
      if (r.why) n.appendChild(el("div", null, "does not cover it: " + r.why));
      row("nearest grant", n);
    }
    row("authority", "step " + r.step + ", plan " + r.plan + (r.revision != null ? " revision " + r.revision : "") +
      (r.intent ? ", intent " + r.intent : "") + (r.objective ? ", objective " + r.objective : ""));
    if (r.audit_serial != null) row("audit serial", String(r.audit_serial) + "  (ausearch -a " + r.audit_serial + ")");
    card.appendChild(dl);
    return card;
  }
  function showIn(pane, title, xs, note) {
    pane.textContent = "";
    pane.appendChild(el("div", "meta", title));
    xs.forEach(function (x) { pane.appendChild(detail(x)); });
    if (note) pane.appendChild(el("div", "note", note));
  }

  function timeline(g, pane) {
    var box = el("div", "tl");
    var span = Math.max(g.ms, 1);
    box.appendChild(el("div", "axis", el("span", null, g.first), el("span", null, "+" + ms(g.ms))));
    var rows = el("div");
    box.appendChild(rows);
    var selected = null;
    function addMarks(track, m0, who) {
      m0.forEach(function (m) {
        var b = el("button", "mk" + (m.d > 0 ? " deny" : ""));
        b.type = "button";
        b.style.left = (100 * m.t / span) + "%";
        b.title = "+" + ms(m.t) + ": " + m.a + " allowed, " + m.d + " denied";
        b.addEventListener("click", function () {
          if (selected) selected.classList.remove("sel");
          selected = b;
          b.classList.add("sel");
          var shown = m.x.length;
          var note = (m.a + m.d > shown) ? (m.a + m.d) + " decisions here; " + shown + " distinct ones shown" : null;
          showIn(pane, who + " at +" + ms(m.t) + ": " + m.a + " allowed, " + m.d + " denied", m.x, note);
        });
        track.appendChild(b);
      });
    }
    function addRow(p) {
      var track = el("div", "track");
      var bar = el("div", "bar");
      bar.style.left = (100 * p.t0 / span) + "%";
      bar.style.width = (100 * (p.t1 - p.t0) / span) + "%";
      track.appendChild(bar);
      addMarks(track, p.marks, procName(p));
      var lbl = el("div", "lbl", procName(p));
      lbl.title = procName(p) + " — " + p.allows + " allowed, " + p.denials + " denied";
      rows.appendChild(el("div", "row", lbl, track, el("div", "st")));
    }
    // One bar per command, from its start to its end; its decisions as
    // marks on it.
    function cmdStatus(c) {
      if (c.status == null) return "running / no end record";
      var s = c.status;
      if (c.ms != null) s += " · " + ms(c.ms);
      if (c.with_step) s += " · ended with its step";
      return s;
    }
    function addCmd(c) {
      var track = el("div", "track");
      var cls = c.status == null ? " open" : (c.ok ? " ok" : " fail");
      var bar = el("div", "bar cmd" + cls);
      bar.style.left = (100 * c.t0 / span) + "%";
      bar.style.width = (100 * (c.t1 - c.t0) / span) + "%";
      track.appendChild(bar);
      var who = "command " + c.id + " (" + c.argv + ")";
      addMarks(track, c.marks, who);
      var lbl = el("div", "lbl", el("code", null, c.argv));
      lbl.title = c.argv + "\ncommand " + c.id + (c.pid != null ? ", pid " + c.pid : "") + ", program " + c.program +
        (c.cwd ? ", in " + c.cwd : "") + " — " + c.allows + " allowed, " + c.denials + " denied";
      var st = el("div", "st" + cls, cmdStatus(c));
      st.title = cmdStatus(c);
      var row = el("div", "row cmd", lbl, track, st);
      row.setAttribute("data-cmd", String(c.id));
      rows.appendChild(row);
    }
    g.cmds.forEach(addCmd);
    if (g.cmds_more) box.appendChild(el("div", "note", g.cmds_more + " more commands not drawn (their decisions are in the tables below)"));
    if (g.cmds.length && g.procs.length) rows.appendChild(el("div", "sep", "processes of no command record"));
    var first = SMALL ? g.procs.length : Math.min(g.procs.length, 40);
    g.procs.slice(0, first).forEach(addRow);
    if (first < g.procs.length) {
      var more = el("button", "more", "show all " + g.procs.length + " processes");
      more.type = "button";
      more.addEventListener("click", function () {
        more.remove();
        g.procs.slice(first).forEach(addRow);
      });
      box.appendChild(more);
    }
    if (g.procs_merged > 0) box.appendChild(el("div", "note", g.procs_merged + 1 + " processes with the fewest decisions share the last row"));
    return box;
  }

  function entryRows(tbody, list, pane, cls) {
    list.forEach(function (e) {
      var tr = el("tr", (cls || "") + (e.x != null ? " click" : ""),
        el("td", null, el("code", null, e.name), e.learned ? el("span", "src", " (" + e.learned + ")") : null),
        el("td", "mono", e.ops.join(", ")),
        el("td", "n allow-t", String(e.allows)),
        el("td", "n deny-t", String(e.denials)));
      if (e.x != null) tr.addEventListener("click", function () { showIn(pane, e.name, [e.x]); });
      tbody.appendChild(tr);
    });
  }
  function table(heads) {
    var t = el("table");
    var tr = el("tr");
    heads.forEach(function (h) { tr.appendChild(el("th", null, h)); });
    t.appendChild(el("thead", null, tr));
    var tb = el("tbody");
    t.appendChild(tb);
    return [t, tb];
  }
  function touched(g, pane) {
    var box = el("div");
    if (g.dirs.length) {
      box.appendChild(el("h4", null, "Paths, by directory"));
      var tt = table(["directory / name", "operations", "allowed", "denied"]);
      g.dirs.forEach(function (d) {
        var open = SMALL;
        var tr = el("tr", "dir", el("td", null, (open ? "▾ " : "▸ "), el("code", null, d.dir || "(relative)"),
          el("span", "src", "  " + d.entries.length + (d.more ? "+" : "") + " objects")), el("td"),
          el("td", "n allow-t", String(d.allows)), el("td", "n deny-t", String(d.denials)));
        tt[1].appendChild(tr);
        var sub = document.createDocumentFragment();
        var rows = [];
        function expand() {
          var tb = el("tbody");
          entryRows(tb, d.entries, pane, "sub");
          if (d.more) tb.appendChild(el("tr", "sub", el("td", "note", d.more + " more records on objects not listed")));
          rows = Array.prototype.slice.call(tb.children);
          rows.forEach(function (r) { sub.appendChild(r); });
          tr.after(sub);
        }
        if (open) expand();
        tr.addEventListener("click", function () {
          open = !open;
          tr.firstChild.firstChild.textContent = open ? "▾ " : "▸ ";
          if (open) expand(); else rows.forEach(function (r) { r.remove(); });
        });
      });
      box.appendChild(tt[0]);
      if (g.dirs_more) box.appendChild(el("div", "note", g.dirs_more + " records in directories not listed (cap " + D.limits.objects_per_step + ")"));
    }
    [["Programs", g.programs, g.programs_more], ["Destinations", g.destinations, g.destinations_more], ["Other", g.other, g.other_more]].forEach(function (k) {
      if (!k[1].length) return;
      box.appendChild(el("h4", null, k[0]));
      var t = table(["object", "operations", "allowed", "denied"]);
      entryRows(t[1], k[1], pane);
      box.appendChild(t[0]);
      if (k[2]) box.appendChild(el("div", "note", k[2] + " records on objects not listed"));
    });
    return box;
  }
  function grants(g) {
    var box = el("div");
    box.appendChild(el("h4", null, "Used"));
    if (!g.used.length) box.appendChild(el("div", "note", "no allowed decision names a grant"));
    g.used.forEach(function (u) {
      var b = grantBlock(u.grant);
      b.firstChild.after(el("span", "src", "  " + u.n + " allowed"));
      box.appendChild(b);
    });
    box.appendChild(el("h4", null, "Never used (candidates to narrow the plan)"));
    if (g.unused == null) {
      box.appendChild(el("div", "note", g.unused_note));
      return box;
    }
    var own = g.unused.filter(function (u) { return !u.library && !u.unrecorded; });
    var lib = g.unused.filter(function (u) { return u.library && !u.unrecorded; });
    var files = g.unused.filter(function (u) { return !u.library && u.unrecorded; });
    if (!own.length) box.appendChild(el("div", "note", "every program and network grant written in the plan was used"));
    own.forEach(function (u) {
      var b = grantBlock(u.grant);
      if (u.plan_wide) b.appendChild(el("div", "src", "plan-wide"));
      box.appendChild(b);
    });
    if (files.length) {
      box.appendChild(el("h4", null, "File grants with no record (may have been used)"));
      box.appendChild(el("div", "note", "Landlock allows reading and writing files without a record (only refusals, and creating or removing names, are recorded), so a file grant with no record may still have been used; it is not listed as never used."));
      files.forEach(function (u) {
        var b = grantBlock(u.grant);
        if (u.plan_wide) b.appendChild(el("div", "src", "plan-wide"));
        box.appendChild(b);
      });
    }
    if (lib.length) {
      var d = el("details", null, el("summary", null, lib.length + " library grants (from `use`) never used"));
      lib.forEach(function (u) { d.appendChild(grantBlock(u.grant)); });
      box.appendChild(d);
    }
    if (g.unused_note) box.appendChild(el("div", "src", g.unused_note));
    return box;
  }
  function lazy(summary, make) {
    var d = el("details", null, el("summary", null, summary));
    var done = false;
    function fill() { if (!done) { done = true; d.appendChild(make()); } }
    d.addEventListener("toggle", function () { if (d.open) fill(); });
    if (SMALL) { d.open = true; fill(); }
    return d;
  }

  function session(s, si) {
    var sec = el("section", "session");
    sec.appendChild(el("h2", null, "Session " + s.id));
    var info = [];
    if (s.objectives.length) info.push("objective " + s.objectives.join(", "));
    if (s.intents.length) info.push("intent " + s.intents.join(", "));
    info.push("host " + (s.host || "?") + ", uid " + (s.uid == null ? "?" : s.uid));
    sec.appendChild(el("div", "meta", info.join(" · ")));
    sec.appendChild(el("div", "meta", s.first + " → " + s.last + " (" + ms(s.ms) + "): ", counts(s.allows, s.denials)));
    var plans = [];
    s.segments.forEach(function (g) {
      var k = "plan " + g.plan + (g.revision != null ? " revision " + g.revision : "");
      if (plans.indexOf(k) < 0) plans.push(k);
    });
    sec.appendChild(el("div", "meta", "plans: " + plans.join(" → ")));
    var lastRev = null;
    s.segments.forEach(function (g, gi) {
      var rk = g.plan + "\u0000" + g.revision;
      if (rk !== lastRev) {
        lastRev = rk;
        sec.appendChild(el("div", "rev", "plan " + g.plan + (g.revision != null ? ", revision " + g.revision : "")));
      }
      var st = el("section", "step");
      st.id = "s" + si + "-" + gi;
      st.appendChild(el("h3", null, "step " + g.step));
      st.appendChild(el("div", "meta", g.first + " · " + ms(g.ms) + " · " + (g.cmds.length ? g.cmds.length + g.cmds_more + " commands · " : "") + g.procs.length + " process rows · ", counts(g.allows, g.denials)));
      var pane = el("div", "pane");
      // The step's first denial, one no grant covers first (a denial a
      // grant covers is enforcement narrower than the grant, and ordinary).
      var mine = D.denials.filter(function (x) { return x.s === si && x.g === gi && x.x != null; });
      var firstDenial = mine.filter(function (x) { return !D.details[x.x].covering; })[0] || mine[0];
      if (firstDenial && firstDenial.x != null) {
        showIn(pane, "the step's first denial (click a mark on the timeline, or an object below, for another decision):", [firstDenial.x]);
      } else {
        pane.appendChild(el("span", "note", "click a mark on the timeline, or an object below, for the decision: object, verdict, grant and its source, why"));
      }
      st.appendChild(timeline(g, pane));
      st.appendChild(pane);
      var nObj = g.dirs.length + " directories, " + g.programs.length + " programs, " + g.destinations.length + " destinations";
      st.appendChild(lazy("What was touched: " + nObj, function () { return touched(g, pane); }));
      var nUnused = g.unused == null ? "?" : g.unused.filter(function (u) { return !u.library && !u.unrecorded; }).length;
      var nFiles = g.unused == null ? 0 : g.unused.filter(function (u) { return !u.library && u.unrecorded; }).length;
      st.appendChild(lazy("Grants: " + g.used.length + " used, " + nUnused + " never used" + (nFiles ? ", " + nFiles + " file grants with no record" : ""), function () { return grants(g); }));
      sec.appendChild(st);
    });
    return sec;
  }

  function denials() {
    var sec = el("section", "denials");
    sec.appendChild(el("h2", null, "Refused: " + D.stats.denials + " denials, " + D.denials.length + " distinct"));
    if (!D.denials.length) {
      sec.appendChild(el("div", "note", "nothing was refused"));
      return sec;
    }
    var t = table(["first", "session · step", "operation", "object", "times"]);
    D.denials.forEach(function (g, i) {
      var s = D.sessions[g.s], seg = s && s.segments[g.g];
      var where = (s ? s.id : "?") + " · " + (seg ? seg.step : "?");
      var tr = el("tr", "click", el("td", "mono", g.time), el("td", null, where), el("td", "mono", g.operation),
        el("td", null, el("code", null, g.object)), el("td", "n", String(g.n)));
      var open = null;
      function toggle() {
        if (open) { open.remove(); open = null; return; }
        var td = el("td", null, detail(g.x == null ? -1 : g.x));
        td.colSpan = 5;
        open = el("tr", "denial-detail", td);
        tr.after(open);
      }
      tr.addEventListener("click", toggle);
      t[1].appendChild(tr);
    });
    sec.appendChild(t[0]);
    if (D.denials.length >= D.limits.denial_details) sec.appendChild(el("div", "note", "distinct denials past the first " + D.limits.denial_details + " are counted, not listed"));
    return sec;
  }

  var root = document.getElementById("kapl-app");
  root.textContent = "";
  D.sessions.forEach(function (s, i) { root.appendChild(session(s, i)); });
  root.appendChild(denials());
  var t = performance.now();
  var r = document.getElementById("kapl-rendered");
  r.setAttribute("data-ms", t.toFixed(1));
  r.textContent = "rendered in " + Math.round(t) + " ms";
})();
