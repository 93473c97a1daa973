// Live refresh for the console's bulk change page, the bulk change list and the dashboard —
// one mechanism. Every element with data-live-url is polled (every data-interval-ms) for JSON:
//   {final, fragments: {elementId: html}, rows: {id: {field: html}}, newer}
// Each fragment replaces the content of the element with that id (unchanged ones are left
// alone; an open "request / response" toggle stays open); each row's cells replace the
// list's td.field-<field> of the row whose checkbox has that id, so scroll and selection stay.
// Polling stops once the answer is final (a bulk change that finished; elements marked
// data-hide-when-final, say its Cancel button, are hidden then), pauses while the tab
// is hidden, and backs off while the server does not answer. No reload, no library.
"use strict";
(function () {
    function openDetails(element) {
        return Array.from(element.querySelectorAll("details[open][data-log-id]"), (d) => d.dataset.logId);
    }

    function applyFragments(fragments) {
        for (const [id, html] of Object.entries(fragments || {})) {
            const element = document.getElementById(id);
            if (!element || element.dataset.liveHtml === html) {
                continue;
            }
            const open = openDetails(element);
            element.innerHTML = html;
            element.dataset.liveHtml = html;
            for (const logId of open) {
                const details = element.querySelector(`details[data-log-id="${logId}"]`);
                if (details) {
                    details.open = true;
                }
            }
        }
    }

    function rowFor(id) {
        const box = document.querySelector(`#result_list input.action-select[value="${id}"]`);
        return box ? box.closest("tr") : null;
    }

    function listedIds() {
        return Array.from(document.querySelectorAll("#result_list input.action-select"), (box) => box.value);
    }

    function applyRows(rows) {
        for (const [id, cells] of Object.entries(rows || {})) {
            const row = rowFor(id);
            if (!row) {
                continue;
            }
            for (const [field, html] of Object.entries(cells)) {
                const cell = row.querySelector(`.field-${field}`);
                if (cell && cell.innerHTML !== html) {
                    cell.innerHTML = html;
                }
            }
        }
    }

    function showNewer(count) {
        const note = document.getElementById("pondops-newer");
        if (!note || count === undefined) {
            return;
        }
        note.hidden = count === 0;
        note.querySelector("span").textContent =
            count === 1 ? "1 newer bulk change is not listed." : `${count} newer bulk changes are not listed.`;
    }

    function requestUrl(element) {
        const url = new URL(element.dataset.liveUrl, window.location.href);
        // The page's own filters (say, the devices panel's status and page) apply to its refresh.
        for (const [key, value] of new URLSearchParams(window.location.search)) {
            url.searchParams.set(key, value);
        }
        if (document.getElementById("result_list")) {
            const ids = listedIds();
            url.searchParams.set("ids", ids.join(","));
            url.searchParams.set("newest", String(Math.max(0, ...ids.map(Number))));
        }
        return url;
    }

    function poll(element) {
        const intervalMs = Number(element.dataset.intervalMs || 2500);
        let failures = 0;

        async function refresh() {
            if (document.hidden) {
                window.setTimeout(refresh, intervalMs);
                return;
            }
            let final = false;
            try {
                const response = await fetch(requestUrl(element), {
                    headers: {"X-Requested-With": "XMLHttpRequest", Accept: "application/json"},
                    credentials: "same-origin",
                    cache: "no-store",
                });
                if (!response.ok) {
                    throw new Error("HTTP " + response.status);
                }
                const answer = await response.json();
                applyFragments(answer.fragments);
                applyRows(answer.rows);
                showNewer(answer.newer);
                final = answer.final === true;
                element.dataset.final = final ? "true" : "false";
                failures = 0;
            } catch (error) {
                failures += 1;
            }
            if (final) {
                // What only an open bulk change offers (Cancel) goes with its last refresh.
                document.querySelectorAll("[data-hide-when-final]").forEach((e) => {
                    e.hidden = true;
                });
                return;
            }
            // Back off while the server is unreachable; give up after about two minutes.
            if (failures < 30) {
                window.setTimeout(refresh, intervalMs * Math.min(1 + failures, 5));
            }
        }

        if (element.dataset.final !== "true") {
            window.setTimeout(refresh, intervalMs);
        }
    }

    document.querySelectorAll("[data-live-url]").forEach(poll);
})();
