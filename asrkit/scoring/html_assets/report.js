// attnasr report.html: sorting, filtering, opening utterances; inlined, no libraries.
"use strict";
(function () {
  function cellValue(row, index) {
    const text = row.cells[index].textContent.trim();
    const number = parseFloat(text.replace(/[^0-9eE+.-]/g, ""));
    return /^[-+]?[0-9.]+/.test(text) && !isNaN(number) ? number : text.toLowerCase();
  }
  function compare(a, b) {
    if (typeof a === "number" && typeof b === "number") return a - b;
    const x = String(a), y = String(b);  // code-point order, as the report files sort ids
    return x < y ? -1 : x > y ? 1 : 0;
  }
  function markSorted(header, ascending) {
    header.parentNode.querySelectorAll("th").forEach((th) => th.classList.remove("asc", "desc"));
    header.classList.add(ascending ? "asc" : "desc");
  }
  // Small tables: sort their rows by the clicked column.
  document.querySelectorAll("table.sortable").forEach((table) => {
    table.querySelectorAll("th").forEach((th, index) => {
      th.addEventListener("click", () => {
        const ascending = !th.classList.contains("asc");
        const body = table.tBodies[0];
        const rows = Array.from(body.rows);
        rows.sort((a, b) => compare(cellValue(a, index), cellValue(b, index)) * (ascending ? 1 : -1));
        rows.forEach((row) => body.appendChild(row));
        markSorted(th, ascending);
      });
    });
  });
  // The utterance list: one <tbody> per utterance (its row and its hidden detail row).
  const table = document.getElementById("utterances");
  if (!table) return;
  const bodies = Array.from(table.tBodies);
  const numeric = new Set(["duration", "words", "errors", "wer", "flags", "other", "delta"]);
  table.querySelectorAll("th[data-key]").forEach((th) => {
    th.addEventListener("click", () => {
      const key = th.dataset.key;
      const ascending = !th.classList.contains("asc");
      const value = (b) => (numeric.has(key) ? parseFloat(b.dataset[key]) : b.dataset[key]);
      bodies.sort((a, b) => compare(value(a), value(b)) * (ascending ? 1 : -1));
      bodies.forEach((b) => table.appendChild(b));
      markSorted(th, ascending);
    });
  });
  bodies.forEach((body) => {
    body.querySelector("tr.head").addEventListener("click", () => {
      const detail = body.querySelector("tr.detail");
      detail.hidden = !detail.hidden;
      body.classList.toggle("open", !detail.hidden);
    });
  });
  // A recording moved or deleted since the report was written: say so where the player was.
  table.querySelectorAll("audio").forEach((audio) => {
    audio.addEventListener("error", () => {
      const note = document.createElement("p");
      note.className = "missing";
      note.textContent = "audio file missing or unreadable: " + audio.dataset.path;
      audio.replaceWith(note);
    });
  });
  const filter = document.getElementById("filter");
  const errorsOnly = document.getElementById("errors-only");
  const flaggedOnly = document.getElementById("flagged-only");
  const shown = document.getElementById("shown");
  function applyFilter() {
    const words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
    let count = 0;
    bodies.forEach((body) => {
      const haystack = (body.dataset.id + " " + body.dataset.speaker + " " + body.dataset.text)
        .toLowerCase();
      const visible = words.every((w) => haystack.includes(w)) &&
        (!errorsOnly.checked || parseFloat(body.dataset.errors) > 0) &&
        (!flaggedOnly.checked || parseFloat(body.dataset.flags) > 0);
      body.hidden = !visible;
      count += visible ? 1 : 0;
    });
    shown.textContent = count + " of " + bodies.length + " shown";
  }
  [filter, errorsOnly, flaggedOnly].forEach((el) => el.addEventListener("input", applyFilter));
  applyFilter();
})();
