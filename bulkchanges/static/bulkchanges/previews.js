// Live progress on a preview's page: while the preview reads, fetch its small progress fragment
// every couple of seconds and swap it in; once it says the preview is finished, reload the page
// once so that the device table and the next step (create the bulk change, or the revert) show.
"use strict";
(function () {
    const container = document.getElementById("pondops-preview-progress");
    if (!container) {
        return;
    }
    const url = container.dataset.url;
    const intervalMs = Number(container.dataset.intervalMs || 1500);
    let failures = 0;

    function isFinal(element) {
        const fragment = element.querySelector("[data-final]");
        return fragment !== null && fragment.dataset.final === "true";
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
            window.location.reload();
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
