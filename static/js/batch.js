// The batch page, live: a contact sheet (contents by styles) whose cells fill in as jobs finish.
// Server-Sent Events from /api/batches/{id}/events (each event is the JSON of GET /api/batches/{id}),
// polling that URL every 2 s when EventSource is missing or keeps failing.
import { statusLabel } from "/js/shared.js";
import { rememberBatch } from "/static/js/recent.js";

(function () {
  "use strict";

  const dataElement = document.getElementById("batch-data");
  if (!dataElement) return;
  let batch = JSON.parse(dataElement.textContent);

  const $ = (id) => document.getElementById(id);
  const cells = new Map([...document.querySelectorAll("[data-job]")].map((cell) => [cell.dataset.job, cell]));

  function totalsText(totals) {
    const parts = [`${totals.succeeded} done`, `${totals.running} running`, `${totals.queued} queued`];
    if (totals.failed) parts.push(`${totals.failed} failed`);
    if (totals.cancelled) parts.push(`${totals.cancelled} cancelled`);
    if (totals.expired) parts.push(`${totals.expired} expired`);
    return parts.join(", ");
  }

  function render(status) {
    $("batch").dataset.status = status.status;
    const badge = $("batch-badge");
    badge.className = `badge badge-${status.status === "finished" ? "succeeded" : status.status}`;
    badge.textContent = status.status.charAt(0).toUpperCase() + status.status.slice(1);
    $("batch-progress").value = status.progress;
    $("batch-progress").textContent = `${Math.floor(status.progress * 100)}%`;
    $("batch-totals").textContent = totalsText(status.totals);
    document.title = status.status === "finished"
      ? `Batch ${status.id.slice(0, 8)} · Atelier`
      : `${Math.floor(status.progress * 100)}% · batch · Atelier`;
    const cancel = $("cancel-batch");
    if (cancel && status.status === "finished") cancel.hidden = true;
    for (const job of status.jobs) {
      const cell = cells.get(job.id);
      if (!cell) continue;
      cell.dataset.status = job.status;
      const label = job.status === "running" ? `${Math.floor(job.progress * 100)}%` : statusLabel(job.status);
      const text = cell.querySelector(".sheet-status");
      if (text.textContent !== label) text.textContent = label;
      const image = cell.querySelector(".sheet-result");
      const source = job.result_url || job.preview_url;
      if (source && image.getAttribute("src") !== source) {
        image.src = source;
        image.hidden = false;
      }
    }
  }

  let rememberedKey = "";
  function apply(status) {
    batch = status;
    render(status);
    const key = `${status.status} ${status.totals.succeeded}`;
    if (key !== rememberedKey) {
      rememberBatch(status); // the home page's recent list shows batches too
      rememberedKey = key;
    }
  }

  async function poll() {
    try {
      const response = await fetch(batch.status_url, { cache: "no-store" });
      if (response.ok) apply(await response.json());
    } catch (error) {
      $("batch-note").textContent = `Cannot reach the server (${error.message}); retrying…`;
    }
    if (batch.status !== "finished") window.setTimeout(poll, 2000);
  }

  function follow() {
    if (batch.status === "finished") return;
    if (!("EventSource" in window)) return poll();
    const source = new EventSource(`${batch.status_url}/events`);
    let failures = 0;
    source.addEventListener("message", (event) => {
      failures = 0;
      apply(JSON.parse(event.data));
    });
    source.addEventListener("end", () => source.close());
    source.addEventListener("error", () => {
      if (batch.status === "finished") return source.close();
      failures += 1; // the server ends each stream after a while; EventSource reconnects by itself
      if (source.readyState === EventSource.CLOSED || failures >= 3) {
        source.close();
        poll();
      }
    });
  }

  const cancel = $("cancel-batch");
  if (cancel) {
    cancel.addEventListener("click", async () => {
      cancel.disabled = true;
      cancel.textContent = "Cancelling…";
      const response = await fetch(batch.cancel_url, { method: "POST" }).catch(() => null);
      if (response && response.ok) apply(await response.json());
      else if (!response || response.status !== 409) {
        cancel.disabled = false;
        cancel.textContent = "Cancel the unfinished jobs";
        $("batch-note").textContent = "Could not cancel; try again.";
      }
    });
  }

  apply(batch);
  follow();
})();
