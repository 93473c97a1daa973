// Loaded on every console page (pondops/templates/admin/base_site.html). The server renders
// every moment once, in UTC (bulkchanges/admin/display.py: timestamp), as
//   <time class="pondops-time" datetime="2026-12-01T19:52:56Z" title="2026-12-01 19:52:56 UTC">
// and this script rewrites the text into the viewer's own time zone,
// "2026-12-01 14:52:56 EST", keeping the UTC moment in the title (on hover). Without
// JavaScript the page still reads correctly, in UTC.
//
// Content swapped in later (live refreshes) is rewritten too: by a MutationObserver, and
// scripts that replace a fragment may call window.pondops.localiseTimes(root) themselves.
"use strict";
(function () {
    const DONE = "pondopsLocalised";
    let formatter = null;

    function getFormatter() {
        if (formatter === null) {
            // en-US for the zone's abbreviation ("EST", "CET" or "GMT+1"), h23 for 00-23 hours;
            // the numbers are reassembled below into one ISO-like order whatever the locale.
            formatter = new Intl.DateTimeFormat("en-US", {
                year: "numeric",
                month: "2-digit",
                day: "2-digit",
                hour: "2-digit",
                minute: "2-digit",
                second: "2-digit",
                hourCycle: "h23",
                timeZoneName: "short",
            });
        }
        return formatter;
    }

    function localText(date) {
        const parts = {};
        for (const part of getFormatter().formatToParts(date)) {
            parts[part.type] = part.value;
        }
        return (
            `${parts.year}-${parts.month}-${parts.day} ` +
            `${parts.hour}:${parts.minute}:${parts.second} ${parts.timeZoneName}`
        );
    }

    function localiseOne(element) {
        if (element.dataset[DONE] === "true") {
            return;
        }
        const date = new Date(element.getAttribute("datetime"));
        if (Number.isNaN(date.getTime())) {
            return; // leave the server's UTC text as it is
        }
        element.textContent = localText(date);
        element.dataset[DONE] = "true";
    }

    // Rewrites every console time under root (default: the whole page) once; safe to call again.
    function localiseTimes(root) {
        const scope = root || document;
        if (scope.matches && scope.matches("time.pondops-time")) {
            localiseOne(scope);
        }
        scope.querySelectorAll("time.pondops-time").forEach(localiseOne);
    }

    window.pondops = Object.assign(window.pondops || {}, {localiseTimes: localiseTimes});

    function start() {
        localiseTimes(document);
        new MutationObserver(function (mutations) {
            for (const mutation of mutations) {
                mutation.addedNodes.forEach(function (node) {
                    if (node.nodeType === Node.ELEMENT_NODE) {
                        localiseTimes(node);
                    }
                });
            }
        }).observe(document.body, {childList: true, subtree: true});
    }

    if (document.readyState === "loading") {
        document.addEventListener("DOMContentLoaded", start);
    } else {
        start();
    }
})();
