// irene's energy map: renders the JSON of `irene explain --format json` (explain.hpp) with d3.
// One script for both the self-contained report (data embedded in #irene-data) and the page
// served by `irene serve` (data fetched from /api/...). No network access beyond that origin.
(function () {
  "use strict";
  const boot = JSON.parse(document.getElementById("irene-data").textContent);
  const KINDS = ["attention", "feed-forward", "embeddings", "norm", "lm head", "other"];
  const css = getComputedStyle(document.documentElement);
  const kindColor = (k) => css.getPropertyValue("--" + k.replace(/ /g, "-")).trim() || "#999";
  const tooltip = d3.select("#tooltip");

  // ---- formatting ---------------------------------------------------------------------------
  // SI prefixes, 4 significant digits: "14.72 J", "306.9 mJ", "2.585 kJ" (as the command line prints).
  const PREFIXES = [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"], [1, ""], [1e-3, "m"], [1e-6, "u"], [1e-9, "n"]];
  function unitFor(a, base) {
    for (const [scale, p] of PREFIXES) if (a >= scale * 0.99995) return { scale, unit: p + base };
    return { scale: 1e-9, unit: "n" + base };
  }
  function si(v, base) {
    if (v === null || v === undefined || !isFinite(v)) return "n/a";
    if (v === 0) return "0 " + base;
    const u = unitFor(Math.abs(v), base);
    return d3.format(".4~r")(v / u.scale) + " " + u.unit;
  }
  const joules = (j) => si(j, "J");
  let basis = "predicted";  // of the explanation on show; measured energies have no interval
  function interval(e) {
    if (!e || e.low_j === null || e.low_j === undefined) return basis === "measured" ? "" : "[no interval]";
    return "[" + joules(e.low_j) + " .. " + joules(e.high_j) + "]";
  }
  const pct = (x) => (x === null || x === undefined ? "n/a" : d3.format(".2f")(100 * x) + "%");
  const signedPct = (x) => (x === null || x === undefined ? "n/a" : d3.format("+.2f")(x) + "%");
  const signed = (j) => (j > 0 ? "+" : "") + joules(j);
  const mflop = (x) => si(x * 1e6, "FLOP");
  const label = (n) => (n.scope ? n.scope.split(".").slice(-2).join(".") + " " : "") + n.class_name;
  const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);

  function showTip(event, html) {
    tooltip.property("hidden", false).html(html);
    const w = tooltip.node().offsetWidth, h = tooltip.node().offsetHeight;
    let x = event.clientX + 14, y = event.clientY + 14;
    if (x + w > window.innerWidth) x = event.clientX - w - 14;
    if (y + h > window.innerHeight) y = event.clientY - h - 14;
    tooltip.style("left", x + "px").style("top", y + "px");
  }
  const hideTip = () => tooltip.property("hidden", true);

  function nodeTip(n, basis) {
    if (n.own_of !== undefined)
      return "<b>own operations</b> of " + esc(n.scope || "(model)") + " " + esc(n.parent_class) +
        (n.ops ? "<br>" + esc(n.ops) : "<br>counted as the node minus its children") +
        "<br>" + esc(basis) + " energy: " + joules(n.energy.j) + " " + interval(n.energy) +
        "<br>share of parent: " + pct(n.share_of_parent) + ", of model: " + pct(n.share_of_model) +
        "<br>attributed: " + joules(n.attributed.j) + " " + interval(n.attributed) + "<br>kind: " + esc(n.kind);
    let html = "<b>" + esc(n.scope || "(model)") + "</b> " + esc(n.class_name) +
      "<br>" + esc(basis) + " energy: " + joules(n.energy.j) + " " + interval(n.energy) +
      "<br>share of parent: " + pct(n.share_of_parent) + ", of model: " + pct(n.share_of_model) +
      "<br>attributed: " + joules(n.attributed.j) + " " + interval(n.attributed) +
      "<br>FLOPs: " + mflop(n.flops_mflop) + ", memory: " + d3.format(",.4~r")(n.mem_mib) + " MiB" +
      ", parameters: " + d3.format(",")(n.num_parameters) + "<br>kind: " + esc(n.kind);
    if (n.measured_j !== null && n.measured_j !== undefined) html += "<br>measured: " + joules(n.measured_j);
    return html;
  }

  // ---- summary cards ------------------------------------------------------------------------
  // Grams CO2e of `j` joules at the report's carbon intensity (null without one).
  const carbon = () => (boot.carbon_intensity_g_per_kwh === null || boot.carbon_intensity_g_per_kwh === undefined
    ? null : boot.carbon_intensity_g_per_kwh);
  const co2eCard = (k, j, low, high) => ({ k: k, v: si(j * carbon() / 3.6e6, "g"),
    i: (low !== null && low !== undefined ? "[" + si(low * carbon() / 3.6e6, "g") + " .. " +
        si(high * carbon() / 3.6e6, "g") + "] " : "") + "at " + carbon() + " g/kWh" });

  function renderSummary(e) {
    const whole = e.phase === "generation";
    const cards = [
      { k: "model", v: e.display_name || e.model_name, i: whole
        ? "batch " + e.batch_size + ", prompt " + e.seq_len + ", generate " + e.generate
        : "batch " + e.batch_size + ", sequence " + e.seq_len },
      { k: e.basis + (whole ? " energy of the whole generation" : " energy per forward pass"), v: joules(e.total.j),
        i: interval(e.total) },
    ];
    if (carbon() !== null)
      cards.push(co2eCard(whole ? "CO2e of the whole generation" : "CO2e per forward pass", e.total.j, e.total.low_j, e.total.high_j));
    if (e.measured_total_j !== null && e.measured_total_j !== undefined && e.basis === "predicted")
      cards.push({ k: "measured", v: joules(e.measured_total_j),
        i: "prediction " + signedPct(100 * (e.total.j / e.measured_total_j - 1)) });
    const top = e.by_kind.slice().sort((a, b) => b.share - a.share)[0];
    if (top) cards.push({ k: "largest module kind", v: top.name + " " + pct(top.share), i: joules(top.energy.j) + " " + interval(top.energy) });
    if (boot.hardware) cards.push({ k: "predictor", v: "", i: boot.hardware });
    const sel = d3.select("#summary").selectAll("div.card").data(cards).join("div").attr("class", "card");
    sel.html((c) => '<div class="k">' + esc(c.k) + '</div><div class="v">' + esc(c.v) + '</div><div class="i">' + esc(c.i) + "</div>");
    d3.select("#rests-on").text(e.rests_on ? e.rests_on.summary : "");
  }

  // ---- the icicle ---------------------------------------------------------------------------
  function renderMap(e) {
    const container = d3.select("#map");
    container.selectAll("*").remove();
    const byIndex = e.nodes.map((n, i) => Object.assign({ index: i, children: [] }, n));
    byIndex.forEach((n) => { if (n.parent >= 0) byIndex[n.parent].children.push(n); });
    // A parent's own operations are one block of its row below it, first: with its children
    // they fill the parent's width (their shares add up to 100%).
    byIndex.forEach((n) => {
      const o = n.own_operations;
      if (!o) return;
      n.children.unshift({ own_of: n.index, id: n.id + ":own", scope: n.scope, class_name: "own operations",
        parent_class: n.class_name, ops: o.ops, kind: n.kind, energy: o.energy, attributed: o.attributed,
        share_of_parent: o.share_of_parent, share_of_model: o.share_of_model, children: [] });
    });
    const root = d3.hierarchy(byIndex[0], (d) => (d.children.length ? d.children : null));
    // Widths are shares of the model (children of a parent add up to the parent).
    root.each((d) => { d.value = Math.max(d.data.share_of_model, 0); });
    const depth = root.height + 1;
    const width = Math.max(600, container.node().clientWidth || 900);
    const rowH = 34, height = depth * rowH;
    d3.partition().size([width, height]).padding(0)(root);
    const x = d3.scaleLinear().domain([0, width]).range([0, width]);
    const y = d3.scaleLinear().domain([0, height]).range([0, height]);
    const svg = container.append("svg").attr("viewBox", [0, 0, width, height]).attr("height", height)
      .attr("role", "img").attr("aria-label", "energy map of " + e.model_name);
    const shade = (d) => {
      const c = d3.color(kindColor(d.data.kind));
      return d.depth === 0 ? "#5d6778" : c.brighter(Math.min(d.depth, 6) * 0.18).formatHex();
    };
    const cell = svg.selectAll("g.cell").data(root.descendants()).join("g").attr("class", "cell")
      .attr("transform", (d) => "translate(" + x(d.x0) + "," + y(d.y0) + ")");
    const rect = cell.append("rect").attr("class", "node")
      .attr("data-id", (d) => d.data.id)
      .attr("width", (d) => Math.max(0, x(d.x1) - x(d.x0)))
      .attr("height", (d) => y(d.y1) - y(d.y0))
      .attr("fill", shade)
      .on("mousemove", (event, d) => showTip(event, nodeTip(d.data, e.basis)))
      .on("mouseleave", hideTip)
      .on("click", (event, d) => zoom(d === focus && d.parent ? d.parent : d));
    const text = cell.append("text").attr("x", 4).attr("y", rowH / 2 + 4);
    // Labels are cut to their block's width (about 6.4 px per character at 11 px).
    const fit = (d, visible) => {
      const full = label(d.data) + " " + pct(d.data.share_of_model);
      const chars = Math.floor((x(d.x1) - x(d.x0) - 8) / 6.4);
      if (!visible || chars < 4) return "";
      return full.length > chars ? full.slice(0, chars - 1) + "\u2026" : full;
    };
    text.text((d) => fit(d, true));
    let focus = root;
    function breadcrumb(d) {
      const path = d.ancestors().reverse();
      const bc = d3.select("#breadcrumb").html("");
      path.forEach((p, i) => {
        if (i) bc.append("span").text(" / ");
        bc.append("a").attr("data-id", p.data.id).text(p.data.scope ? p.data.scope.split(".").pop() + " " + p.data.class_name : p.data.class_name)
          .on("click", () => zoom(p));
      });
      bc.append("span").text("  " + joules(d.data.energy.j) + " " + interval(d.data.energy) + ", " + pct(d.data.share_of_model) + " of the model");
    }
    function zoom(d) {
      focus = d;
      x.domain([d.x0, d.x1]);
      y.domain([d.y0, height]).range([0, height]);
      const t = svg.transition().duration(450);
      cell.transition(t).attr("transform", (n) => "translate(" + x(n.x0) + "," + y(n.y0) + ")");
      rect.transition(t).attr("width", (n) => Math.max(0, x(n.x1) - x(n.x0))).attr("height", (n) => y(n.y1) - y(n.y0));
      text.text((n) => fit(n, n.y0 >= d.y0));
      svg.attr("data-focus", d.data.id);
      breadcrumb(d);
    }
    svg.attr("data-focus", root.data.id);
    breadcrumb(root);
    const legend = d3.select("#legend").html("");
    const present = new Set(e.nodes.map((n) => n.kind));
    KINDS.filter((k) => present.has(k) || k === "other")
      .forEach((k) => legend.append("span").html('<span class="sw" style="background:' + kindColor(k) + '"></span>' + k));
  }

  // ---- tables -------------------------------------------------------------------------------
  function table(sel, columns, rows) {
    const t = d3.select(sel).html("").append("table");
    t.append("thead").append("tr").selectAll("th").data(columns).join("th")
      .attr("class", (c) => c.cls || null).text((c) => c.name);
    const tr = t.append("tbody").selectAll("tr").data(rows).join("tr");
    tr.selectAll("td").data((r) => columns.map((c) => ({ c, r }))).join("td")
      .attr("class", (d) => d.c.cls || null)
      .each(function (d) { d.c.render(d3.select(this), d.r); });
    return t;
  }
  const txt = (f) => (cell, r) => cell.text(f(r));
  const bar = (f, color) => (cell, r) => cell.append("div").style("width", Math.max(0, Math.min(1, f(r))) * 100 + "%").style("background", color(r));

  // Hotspots grouped by repeated structure ("encoder.layer.*.intermediate.dense, 12 x 2.33%"), or one
  // row per ML primitive when "one row per layer" is ticked.
  let expandHotspots = false;
  function renderHotspots(e) {
    const holder = d3.select("#hotspots").html("");
    const toggle = holder.append("label").attr("class", "toggle");
    toggle.append("input").attr("type", "checkbox").attr("id", "hotspots-expand").property("checked", expandHotspots)
      .on("change", function () { expandHotspots = this.checked; renderHotspots(e); });
    toggle.append("span").text(" one row per layer");
    holder.append("div").attr("id", "hotspots-table");
    const hasMeasured = e.nodes.some((n) => n.measured_j !== null && n.measured_j !== undefined);
    if (expandHotspots || !e.hotspot_groups) {
      const hot = e.hotspots.map((i, r) => Object.assign({ rank: r + 1 }, e.nodes[i]));
      const cols = [
        { name: "#", cls: "num", render: txt((r) => r.rank) },
        { name: "ML primitive", render: txt((r) => r.scope + " (" + r.class_name + ")") },
        { name: "share of model", cls: "num", render: txt((r) => pct(r.share_of_model)) },
        { name: "attributed", cls: "num", render: txt((r) => joules(r.attributed.j)) },
        { name: "interval", cls: "num", render: txt((r) => interval(r.attributed)) },
        { name: "own", cls: "num", render: txt((r) => joules(r.energy.j)) },
      ];
      if (hasMeasured) cols.push({ name: "measured (own)", cls: "num", render: txt((r) => joules(r.measured_j)) });
      table("#hotspots-table", cols, hot);
      return;
    }
    const groups = e.hotspot_groups.map((g, r) => Object.assign({ rank: r + 1 }, g));
    table("#hotspots-table", [
      { name: "#", cls: "num", render: txt((g) => g.rank) },
      { name: "ML primitive (layers grouped)", render: txt((g) => (g.pattern || "(root)") + " (" + g.class_name + ")" +
          (g.count > 1 ? ", " + g.count + " x " + pct(g.share / g.count) : "")) },
      { name: "share of model", cls: "num", render: txt((g) => pct(g.share)) },
      { name: "attributed", cls: "num", render: txt((g) => joules(g.attributed.j)) },
      { name: "interval", cls: "num", render: txt((g) => interval(g.attributed)) },
      { name: "own (each)", cls: "num", render: txt((g) => joules(g.own.j / g.count)) },
    ], groups);
  }

  function renderTables(e) {
    renderHotspots(e);
    const groupCols = (first) => [
      { name: first, render: txt((g) => g.name + " (" + g.count + ")") },
      { name: "share", cls: "num", render: txt((g) => pct(g.share)) },
      { name: "", cls: "bar", render: bar((g) => g.share, (g) => kindColor(KINDS.includes(g.name) ? g.name : "attention")) },
      { name: "energy", cls: "num", render: txt((g) => joules(g.energy.j)) },
      { name: "interval", cls: "num", render: txt((g) => interval(g.energy)) },
    ];
    table("#by-kind", groupCols("module kind"), e.by_kind.filter((g) => g.count > 0 || g.energy.j > 0));
    table("#by-primitive", groupCols("primitive type"), e.by_primitive);
  }

  // ---- predicted against measured -----------------------------------------------------------
  function renderMeasured(e) {
    const pts = e.nodes.filter((n) => n.predicted_j > 0 && n.measured_j > 0);
    d3.select("#measured-panel").property("hidden", pts.length === 0);
    const div = d3.select("#pred-vs-measured").html("");
    if (!pts.length) return;
    const W = 520, H = 360, m = { l: 60, r: 20, t: 10, b: 40 };
    const lo = d3.min(pts, (n) => Math.min(n.predicted_j, n.measured_j)) * 0.8;
    const hi = d3.max(pts, (n) => Math.max(n.predicted_j, n.measured_j)) * 1.25;
    const x = d3.scaleLog().domain([lo, hi]).range([m.l, W - m.r]);
    const y = d3.scaleLog().domain([lo, hi]).range([H - m.b, m.t]);
    const svg = div.append("svg").attr("viewBox", [0, 0, W, H]).attr("width", W).attr("height", H);
    svg.append("g").attr("class", "axis").attr("transform", "translate(0," + (H - m.b) + ")").call(d3.axisBottom(x).ticks(5, "~g"));
    svg.append("g").attr("class", "axis").attr("transform", "translate(" + m.l + ",0)").call(d3.axisLeft(y).ticks(5, "~g"));
    svg.append("text").attr("x", W / 2).attr("y", H - 6).attr("text-anchor", "middle").text("measured (J)");
    svg.append("text").attr("transform", "rotate(-90)").attr("x", -H / 2).attr("y", 14).attr("text-anchor", "middle").text("predicted (J)");
    svg.append("line").attr("x1", x(lo)).attr("y1", y(lo)).attr("x2", x(hi)).attr("y2", y(hi)).attr("stroke", "#999").attr("stroke-dasharray", "4 3");
    svg.selectAll("line.iv").data(pts.filter((n) => n.predicted_low_j > 0)).join("line").attr("class", "iv")
      .attr("x1", (n) => x(n.measured_j)).attr("x2", (n) => x(n.measured_j))
      .attr("y1", (n) => y(Math.max(lo, n.predicted_low_j))).attr("y2", (n) => y(Math.min(hi, n.predicted_high_j)))
      .attr("stroke", (n) => kindColor(n.kind)).attr("opacity", 0.35);
    svg.selectAll("circle").data(pts).join("circle").attr("class", "pt")
      .attr("cx", (n) => x(n.measured_j)).attr("cy", (n) => y(n.predicted_j)).attr("r", 3.5)
      .attr("fill", (n) => kindColor(n.kind))
      .on("mousemove", (event, n) => showTip(event, nodeTip(n, e.basis)))
      .on("mouseleave", hideTip);
  }

  // ---- sweep --------------------------------------------------------------------------------
  // One variable (batch or sequence length): the model and each module kind against it. Two: the
  // model's energy against the one with more values, one line per value of the other.
  function renderSweep(points) {
    d3.select("#sweep-panel").property("hidden", !points || points.length < 2);
    const div = d3.select("#sweep").html("");
    if (!points || points.length < 2) return;
    // The variables that vary across the points: the one with most values is the x axis; a second
    // one gives one line per value.
    const values = (k) => [...new Set(points.map((p) => p[k] || 0))].sort((a, b) => a - b);
    const vars = ["seq_len", "past_len", "batch_size", "generate", "prompt"].filter((k) => values(k).length > 1)
      .sort((a, b) => values(b).length - values(a).length);
    const key = vars[0] || "seq_len";
    const twoVars = vars.length > 1;
    const other = twoVars ? vars[1] : (key === "batch_size" ? (points[0].generate !== undefined ? "generate" : "seq_len") : "batch_size");
    const name = { seq_len: "sequence length (tokens)", batch_size: "batch size (sequences)",
      past_len: "cached positions of a decode step", generate: "generated tokens per sequence",
      prompt: "prompt tokens" };
    const short = { seq_len: "seq", batch_size: "batch", past_len: "past", generate: "generate", prompt: "prompt" };
    const generation = points[0].generate !== undefined;
    let series;
    if (twoVars) {
      let vals = values(other);
      if (vals.length > 10) vals = d3.range(10).map((i) => vals[Math.round(i * (vals.length - 1) / 9)]);
      const color = d3.scaleSequential(d3.interpolateViridis).domain([0, Math.max(1, vals.length - 1) * 1.15]);
      series = vals.map((v, i) => ({
        name: short[other] + " " + v, color: color(i), get: (p) => p.model,
        pts: points.filter((p) => (p[other] || 0) === v).sort((a, b) => a[key] - b[key]),
      }));
    } else {
      const pts = points.slice().sort((a, b) => a[key] - b[key]);
      series = [{ name: "model", color: "#1d2430", get: (p) => p.model, pts }]
        .concat(KINDS.filter((k) => points.some((p) => p.kinds[k] && p.kinds[k].j > 0))
          .map((k) => ({ name: k, color: kindColor(k), get: (p) => p.kinds[k], pts })));
    }
    const W = Math.max(480, Math.round(div.node().getBoundingClientRect().width) || 900), H = 380;
    const m = { l: 72, r: 120, t: 12, b: 44 };
    const x = d3.scaleLinear().domain(d3.extent(points, (p) => p[key] || 0)).range([m.l, W - m.r]);
    const ymax = d3.max(points, (p) => (p.model.high_j !== null ? Math.max(p.model.high_j, p.model.j) : p.model.j));
    const u = unitFor(ymax, "J");
    const y = d3.scaleLinear().domain([0, ymax * 1.05]).nice().range([H - m.b, m.t]);
    const svg = div.append("svg").attr("viewBox", [0, 0, W, H]).attr("width", "100%").attr("height", H)
      .attr("preserveAspectRatio", "xMinYMin meet");
    svg.append("g").attr("class", "axis").attr("transform", "translate(0," + (H - m.b) + ")").call(d3.axisBottom(x).ticks(8, "~d"));
    svg.append("g").attr("class", "axis y").attr("transform", "translate(" + m.l + ",0)")
      .call(d3.axisLeft(y).ticks(6).tickFormat((v) => d3.format("~r")(+(v / u.scale).toPrecision(6)) + " " + u.unit));
    const fixed = twoVars ? "one line per " + name[other].split(" (")[0] : short[other] + " " + (points[0][other] || 0);
    svg.append("text").attr("class", "xlabel").attr("x", (W - m.r + m.l) / 2).attr("y", H - 6).attr("text-anchor", "middle")
      .text(name[key] + " (" + fixed + ")");
    svg.append("text").attr("transform", "rotate(-90)").attr("x", -H / 2).attr("y", 14).attr("text-anchor", "middle")
      .text(generation ? "joules of the generation" : (twoVars ? "model energy" : "energy") + " per forward pass");
    series.forEach((s, i) => {
      const pts = s.pts;
      const withIv = pts.filter((p) => s.get(p).low_j !== null && s.get(p).low_j !== undefined);
      if (withIv.length === pts.length && (!twoVars || series.length <= 4))
        svg.append("path").attr("class", "band").attr("fill", s.color).attr("opacity", 0.15)
          .attr("d", d3.area().x((p) => x(p[key])).y0((p) => y(s.get(p).low_j)).y1((p) => y(s.get(p).high_j))(pts));
      svg.append("path").attr("class", "line").attr("fill", "none").attr("stroke", s.color).attr("stroke-width", 2)
        .attr("d", d3.line().x((p) => x(p[key])).y((p) => y(s.get(p).j))(pts));
      if (pts.length <= 64)
        svg.selectAll("circle.s" + i).data(pts).join("circle").attr("class", "s" + i).attr("r", 3).attr("fill", s.color)
          .attr("cx", (p) => x(p[key])).attr("cy", (p) => y(s.get(p).j))
          .attr("data-x", (p) => p[key]).attr("data-j", (p) => s.get(p).j)
          .on("mousemove", (event, p) => showTip(event, "<b>" + esc(s.name) + "</b> at " +
            (generation ? "batch " + p.batch_size + ", prompt " + p.prompt + ", generate " + p.generate
                        : "batch " + p.batch_size + ", sequence " + p.seq_len) +
            ": " + joules(s.get(p).j) + " " + interval(s.get(p))))
          .on("mouseleave", hideTip);
      svg.append("text").attr("class", "legend").attr("x", W - m.r + 8).attr("y", m.t + 14 + 16 * i).attr("fill", s.color).text(s.name);
    });
  }

  // ---- generation (irene report --prompt P --generate N) ------------------------------------
  function renderGeneration(g) {
    d3.select("#generation-panel").property("hidden", !g);
    if (!g) return;
    const cards = [
      { k: "model", v: g.model_name, i: "batch " + g.batch + ", prompt " + g.prompt + ", generate " + g.generate + ", " + g.dtype },
      { k: "total", v: joules(g.total_j.j), i: interval(g.total_j) },
      { k: "prefill", v: joules(g.prefill_j.j), i: interval(g.prefill_j) },
      { k: "decode (" + g.steps.length + " steps)", v: joules(g.decode_j.j), i: interval(g.decode_j) },
      { k: "per generated token", v: joules(g.per_token_j.j), i: interval(g.per_token_j) },
    ];
    if (carbon() !== null) {
      cards.push(co2eCard("CO2e in total", g.total_j.j, g.total_j.low_j, g.total_j.high_j));
      cards.push(co2eCard("CO2e per generated token", g.per_token_j.j, g.per_token_j.low_j, g.per_token_j.high_j));
    }
    if (g.time) {
      const t = g.time;
      cards.push({ k: "time", v: si(t.total_s.s, "s"), i: "first token after " + si(t.time_to_first_token_s, "s") +
        ", then " + si(t.inter_token_latency_s, "s") + " per token" });
      cards.push({ k: "throughput", v: d3.format(".4~r")(t.decode_tokens_per_s) + " tokens/s", i: "while decoding (" +
        d3.format(".4~r")(t.tokens_per_s) + " overall)" });
      cards.push({ k: "mean power", v: si(t.mean_power_w, "W"), i: si(t.decode_power_w, "W") + " while decoding" });
    }
    d3.select("#generation-cards").selectAll("div.card").data(cards).join("div").attr("class", "card")
      .html((c) => '<div class="k">' + esc(c.k) + '</div><div class="v">' + esc(c.v) + '</div><div class="i">' + esc(c.i) + "</div>");
    d3.select("#generation-rests-on").text(g.rests_on ? g.rests_on.summary : "");
    // Energy of every decode step against the cached length, with its interval.
    const div = d3.select("#generation-steps").html("");
    const pts = g.steps;
    if (pts.length >= 2) {
      const W = Math.max(480, Math.round(div.node().getBoundingClientRect().width) || 900), H = 280;
      const m = { l: 72, r: 20, t: 10, b: 40 };
      const x = d3.scaleLinear().domain(d3.extent(pts, (p) => p.past)).range([m.l, W - m.r]);
      const ymax = d3.max(pts, (p) => Math.max(p.high_j === null ? p.energy_j : p.high_j, p.energy_j));
      const u = unitFor(ymax, "J");
      const y = d3.scaleLinear().domain([0, ymax * 1.05]).nice().range([H - m.b, m.t]);
      const svg = div.append("svg").attr("viewBox", [0, 0, W, H]).attr("width", "100%").attr("height", H)
        .attr("preserveAspectRatio", "xMinYMin meet");
      svg.append("g").attr("class", "axis").attr("transform", "translate(0," + (H - m.b) + ")").call(d3.axisBottom(x).ticks(8, "~d"));
      svg.append("g").attr("class", "axis y").attr("transform", "translate(" + m.l + ",0)")
        .call(d3.axisLeft(y).ticks(6).tickFormat((v) => d3.format("~r")(+(v / u.scale).toPrecision(6)) + " " + u.unit));
      svg.append("text").attr("x", (W + m.l) / 2).attr("y", H - 6).attr("text-anchor", "middle").text("cached positions (past)");
      svg.append("text").attr("transform", "rotate(-90)").attr("x", -H / 2).attr("y", 14).attr("text-anchor", "middle").text("joules per decode step");
      if (pts.every((p) => p.low_j !== null))
        svg.append("path").attr("class", "band").attr("fill", "#1d2430").attr("opacity", 0.12)
          .attr("d", d3.area().x((p) => x(p.past)).y0((p) => y(p.low_j)).y1((p) => y(p.high_j))(pts));
      svg.append("path").attr("class", "line").attr("fill", "none").attr("stroke", "#1d2430").attr("stroke-width", 2)
        .attr("d", d3.line().x((p) => x(p.past)).y((p) => y(p.energy_j))(pts));
      svg.append("rect").attr("x", m.l).attr("y", m.t).attr("width", W - m.l - m.r).attr("height", H - m.t - m.b)
        .attr("fill", "transparent")
        .on("mousemove", (event) => {
          const past = x.invert(d3.pointer(event)[0]);
          const p = pts[Math.max(0, Math.min(pts.length - 1, Math.round(past - pts[0].past)))];
          showTip(event, "step at past " + p.past + ": " + joules(p.energy_j) + " " + interval({ low_j: p.low_j, high_j: p.high_j }));
        })
        .on("mouseleave", hideTip);
    }
    table("#generation-kinds", [
      { name: "module kind", render: txt((k) => k.name) },
      { name: "share", cls: "num", render: txt((k) => pct(k.share)) },
      { name: "energy", cls: "num", render: txt((k) => joules(k.energy.j)) },
      { name: "interval", cls: "num", render: txt((k) => interval(k.energy)) },
      { name: "prefill", cls: "num", render: txt((k) => joules(k.prefill_j)) },
      { name: "decode", cls: "num", render: txt((k) => joules(k.decode_j)) },
    ], g.by_kind.filter((k) => k.energy.j !== 0));
  }

  // ---- compare (server page) ----------------------------------------------------------------
  function renderCompare(c) {
    d3.select("#compare-panel").property("hidden", !c);
    const div = d3.select("#compare").html("");
    if (!c) return;
    const side = (s) => (s.display_name || s.model_name) + " batch " + s.batch_size + " seq " + s.seq_len;
    div.append("p").text("a: " + side(c.a) + "  |  b: " + side(c.b) + "  |  total b - a: " + signed(c.total.diff.j) +
      " [" + signed(c.total.diff.low_j) + " .. " + signed(c.total.diff.high_j) + "] (" + signedPct(c.total.change_pct) + ")");
    const cols = [
      { name: "module kind", render: txt((g) => g.name) },
      { name: "a", cls: "num", render: txt((g) => joules(g.a.j)) },
      { name: "b", cls: "num", render: txt((g) => joules(g.b.j)) },
      { name: "b - a", cls: "num", render: (cell, g) => cell.attr("class", "num " + (g.diff.j > 0 ? "pos" : g.diff.j < 0 ? "neg" : "")).text(signed(g.diff.j)) },
      { name: "interval", cls: "num", render: txt((g) => "[" + signed(g.diff.low_j) + " .. " + signed(g.diff.high_j) + "]") },
      { name: "change", cls: "num", render: txt((g) => signedPct(g.change_pct)) },
    ];
    const holder = div.append("div").attr("id", "compare-kinds");
    table("#compare-kinds", cols, c.by_kind);
    const nodes = c.nodes.slice().sort((p, q) => Math.abs(q.diff.j) - Math.abs(p.diff.j)).slice(0, 15);
    holder.append("h2").text("Largest node differences");
    const t2 = div.append("div").attr("id", "compare-nodes");
    table("#compare-nodes", [
      { name: "node", render: txt((d) => (d.scope || "(model)") + " (" + d.class_name + ")") },
      { name: "status", render: txt((d) => d.status) },
      { name: "b - a", cls: "num", render: txt((d) => signed(d.diff.j)) },
      { name: "change", cls: "num", render: txt((d) => signedPct(d.change_pct)) },
    ], nodes);
    return t2;
  }

  function render(e) {
    basis = e.basis;
    renderSummary(e);
    renderMap(e);
    renderTables(e);
    renderMeasured(e);
    document.title = "irene: " + (e.display_name || e.model_name) + " batch " + e.batch_size +
      (e.phase === "generation" ? " prompt " + e.seq_len + " generate " + e.generate + " whole generation"
                                : " seq " + e.seq_len + (e.phase === "decode" ? " decode past " + e.past_len : ""));
  }

  // ---- report mode --------------------------------------------------------------------------
  function startReport() {
    const trees = boot.trees || [];
    if (!trees.length) {
      d3.select("#summary").append("p").attr("class", "error").text("no trees in this report");
      return;
    }
    if (boot.trees_total && boot.trees_total > trees.length)
      d3.select("#summary").append("p").attr("class", "note")
        .text("This report shows " + trees.length + " of its " + boot.trees_total +
              " trees in full (evenly spaced); the sweep below plots all of them.");
    // A generation's report opens on its last decode step (what every further token costs); the
    // selector switches to the prefill, the first step and the whole generation (the prefill and
    // every step summed node by node); the panel above holds its totals.
    const lastStep = trees.map((t) => t.phase).lastIndexOf("decode");
    const first = boot.generation && lastStep >= 0 ? lastStep : 0;
    const passName = (t, i) => t.phase === "generation"
      ? "the whole generation (the prefill and " + t.generate + " decode steps)"
      : t.phase === "decode" ? (i === lastStep ? "last" : "first") + " decode step (past " + t.past_len + ")"
                             : "the prefill (" + t.seq_len + " tokens)";
    if (trees.length > 1) {
      const c = d3.select("#controls");
      c.append("label").attr("for", "tree-select").text(boot.generation ? "pass of the generation" : "tree");
      c.append("select").attr("id", "tree-select")
        .on("change", function () { render(trees[+this.value]); })
        .selectAll("option").data(trees).join("option").attr("value", (t, i) => i)
        .text((t, i) => boot.generation
          ? passName(t, i) + ", batch " + t.batch_size
          : (t.display_name || t.model_name) + " batch " + t.batch_size + " seq " + t.seq_len +
            (t.phase === "decode" ? " decode past " + t.past_len : ""));
      d3.select("#tree-select").property("value", first);
    }
    render(trees[first]);
    renderGeneration(boot.generation || null);
    // A generation's sweep is over its batches, prompts and generated tokens (irene sweep --generate
    // --report); its three passes are not a sweep.
    if (boot.generation)
      renderSweep((boot.generation_sweep || []).map((p) => ({ batch_size: p.batch, prompt: p.prompt, generate: p.generate,
        model: p.total_j, kinds: p.kinds })));
    else renderSweep(boot.sweep);
    renderCompare(boot.comparison || null);
  }

  // ---- server mode --------------------------------------------------------------------------
  function startServer() {
    const c = d3.select("#controls");
    const field = (id, text, el) => { c.append("label").attr("for", id).text(text); return c.append(el).attr("id", id); };
    const model = field("model", "model", "select");
    const batch = field("batch", "batch", "input").attr("type", "number").attr("min", 1).property("value", 8);
    const seq = field("seq", "sequence", "input").attr("type", "number").attr("min", 1).property("value", 128);
    c.append("button").attr("id", "go").text("Predict").on("click", predict);
    const modelB = field("model-b", "compare with", "select");
    const seqB = field("seq-b", "sequence b", "input").attr("type", "number").attr("min", 1).property("value", 256);
    c.append("button").attr("id", "go-compare").text("Compare").on("click", compareNow);
    const status = c.append("span").attr("id", "status");
    const fail = (err) => status.attr("class", "error").text(String(err.message || err));
    const getJSON = (url) => fetch(url).then((r) => r.json().then((j) => { if (!r.ok) throw new Error(j.error || r.statusText); return j; }));
    function query() {
      return "model=" + encodeURIComponent(model.property("value")) + "&batch=" + encodeURIComponent(batch.property("value")) +
        "&seq=" + encodeURIComponent(seq.property("value"));
    }
    function predict() {
      status.attr("class", null).text("predicting...");
      return getJSON("api/predict?" + query()).then((e) => { boot.hardware = e.hardware; render(e); status.text(""); }).catch(fail);
    }
    function compareNow() {
      status.attr("class", null).text("comparing...");
      const q = "a=" + encodeURIComponent(model.property("value")) + "&b=" + encodeURIComponent(modelB.property("value")) +
        "&batch=" + encodeURIComponent(batch.property("value")) + "&seq=" + encodeURIComponent(seq.property("value")) +
        "&seq_b=" + encodeURIComponent(seqB.property("value"));
      return getJSON("api/compare?" + q).then((r) => { renderCompare(r); status.text(""); }).catch(fail);
    }
    getJSON("api/models").then((r) => {
      for (const sel of [model, modelB]) sel.selectAll("option").data(r.models).join("option").attr("value", (m) => m).text((m) => m);
      if (r.models.includes("bert-base-uncased")) { model.property("value", "bert-base-uncased"); modelB.property("value", "bert-base-uncased"); }
      return predict();
    }).catch(fail);
  }

  // ---- serving mode (irene explain --serving --format html) ---------------------------------
  // One stacked bar per point (the step's parts, in shares) and the table of the same numbers.
  function startServing() {
    const e = boot.serving_explanation;
    d3.selectAll("main > section, #rests-on").style("display", "none");
    d3.select("#serving-panel").property("hidden", false).style("display", null);
    d3.select("footer").text("Energies are joules of one serving step of all GPUs, or per generated token, " +
      "as predicted by irene's serving predictor. " + d3.select("footer").text().replace(/^.*(Made by)/, "$1"));
    const s = e.serving, w = s.workload;
    const cards = [
      { k: "model", v: w.model, i: w.gpus + " GPU" + (w.gpus > 1 ? "s" : "") + ", " + w.weight_precision +
        (w.expert_parallel > 1 ? ", experts over " + w.expert_parallel : "") },
      { k: "hardware", v: s.hardware.name, i: s.hardware.description },
      { k: "predictor", v: s.predictor.kind, i: "fitted on " + s.predictor.runs + " runs of " + s.predictor.trained_on_hardware.join(", ") },
    ];
    d3.select("#serving-cards").selectAll("div.card").data(cards).join("div").attr("class", "card")
      .html((c) => '<div class="k">' + esc(c.k) + '</div><div class="v">' + esc(c.v) + '</div><div class="i">' + esc(c.i) + "</div>");
    d3.select("#serving-note").text("prompt tokens: " + w.sources.prompt_tokens + "; output tokens: " + w.sources.output_tokens);
    d3.select("#serving-rests-on").text(e.rests_on ? e.rests_on.summary : "");
    const pointName = (p) => "B=" + p.max_num_seqs + " P=" + p.prompt_tokens + " N=" + d3.format(".4~r")(p.output_tokens);
    const parts = e.parts;
    const color = d3.scaleOrdinal(d3.schemeTableau10).domain(parts.map((p) => p.part));
    // bars
    const W = 900, rowH = 28, left = 200, H = e.points.length * rowH + 40;
    const x = d3.scaleLinear().domain([0, 100]).range([left, W - 20]);
    const svg = d3.select("#serving-bars").append("svg").attr("viewBox", "0 0 " + W + " " + H).attr("width", W);
    e.points.forEach((p, i) => {
      let at = 0;
      const g = svg.append("g").attr("class", "serving-point").attr("transform", "translate(0," + (i * rowH + 10) + ")");
      g.append("text").attr("x", left - 8).attr("y", rowH / 2).attr("text-anchor", "end").attr("dominant-baseline", "middle").text(pointName(p));
      for (const bp of p.by_part) {
        g.append("rect").attr("class", "serving-part").attr("data-part", bp.part)
          .attr("x", x(at)).attr("y", 2).attr("height", rowH - 6).attr("width", Math.max(0, x(at + bp.share_pct) - x(at)))
          .attr("fill", color(bp.part))
          .on("mousemove", (ev) => showTip(ev, "<b>" + esc(bp.label) + "</b><br>" + pointName(p) + "<br>" +
            d3.format(".2f")(bp.share_pct) + "% of the step, " + joules(bp.step_j) + " (" + joules(bp.per_token_j) + " per token)"))
          .on("mouseleave", hideTip);
        at += bp.share_pct;
      }
    });
    svg.append("g").attr("transform", "translate(0," + (e.points.length * rowH + 12) + ")")
      .call(d3.axisBottom(x).ticks(10).tickFormat((v) => v + "%"));
    // table: one row per part, one column per point
    const table = d3.select("#serving-table").append("table").attr("id", "serving-shares");
    const head = table.append("thead").append("tr");
    head.append("th").text("part");
    for (const p of e.points) head.append("th").text(pointName(p));
    const body = table.append("tbody");
    const figure = (name, f) => {
      const tr = body.append("tr").attr("class", "serving-figure");
      tr.append("td").text(name);
      for (const p of e.points) tr.append("td").attr("class", "num").text(f(p));
    };
    figure("step energy (all GPUs)", (p) => joules(p.step_j));
    figure("energy per generated token", (p) => joules(p.energy_per_token_j));
    figure("inter-token latency", (p) => d3.format(".2f")(1000 * p.itl_s) + " ms");
    figure("mean power", (p) => d3.format(".0f")(p.mean_power_w) + " W");
    for (const part of parts) {
      const tr = body.append("tr").attr("class", "serving-share").attr("data-part", part.part);
      tr.append("td").html('<span class="swatch" style="background:' + color(part.part) + '"></span> ' + esc(part.label));
      for (const v of e.shares[part.part]) tr.append("td").attr("class", "num").text(d3.format(".2f")(v) + "%");
    }
    document.title = boot.title || "irene serving energy";
  }

  if (boot.mode === "server") startServer();
  else if (boot.mode === "serving") startServing();
  else startReport();
})();
