// Live progress on the bulk change page: while the bulk change runs, fetch the small progress
// fragment every few seconds and swap it in place — the rest of the page (the log, the scroll
// position) stays as it is. Stops once the fragment says the bulk change is final.
"use strict";
(function () {
    const container = document.getElementById("pondops-progress");
    if (!container) {
        return;
    }
    const url = container.dataset.url;
    const intervalMs = Number(container.dataset.intervalMs || 2000);
    let failures = 0;

    function isFinal(element) {
        const fragment = element.querySelector("[data-final]");
        return fragment !== null && fragment.dataset.final === "true";
    }

    function showFinished() {
        const note = document.getElementById("pondops-log-refresh");
        if (note) {
            note.hidden = false;
        }
    }

    async function refresh() {
        try {
            const response = await fetch(url, {
                headers: {"X-Requested-With": "XMLHttpRequest"},
                credentials: "same-origin",
                cache: "no-store",
            });
            if (!response.ok) {
                throw new Error("HTTP " + response.status);
            }
            container.innerHTML = await response.text();
            failures = 0;
        } catch (error) {
            failures += 1;
        }
        if (isFinal(container)) {
            showFinished();
            return;
        }
        // Back off while the server is unreachable; give up after a minute of failures.
        if (failures < 30) {
            window.setTimeout(refresh, intervalMs * Math.min(1 + failures, 5));
        }
    }

    if (!isFinal(container)) {
        window.setTimeout(refresh, intervalMs);
    }
})();
