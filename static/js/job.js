// The job page, live: Server-Sent Events from /api/jobs/{id}/events (each event is the JSON of
// GET /api/jobs/{id}), polling that URL every second when EventSource is missing or fails.
// Everything shown comes from the server's status, so a reload or a second browser agree.
import { setUpNotifications } from "/static/js/notify.js";
import { remember } from "/static/js/recent.js";
import { renderVideo } from "/static/js/video.js";
import { EXPIRED, FINISHED as FINISHED_STATUSES, statusLabel } from "/js/shared.js";

(function () {
  "use strict";

  const dataElement = document.getElementById("job-data");
  if (!dataElement) return;

  const FINISHED = new Set(FINISHED_STATUSES);
  const POLL_MS = 1000;
  const MAX_POLL_MS = 10000;
  const MAX_CHART_POINTS = 400;

  const $ = (id) => document.getElementById(id);
  const el = {
    root: $("job"),
    badge: $("status-badge"),
    queueNote: $("queue-note"),
    bar: $("progress-bar"),
    progressText: $("progress-text"),
    percent: $("progress-percent"),
    elapsed: $("elapsed"),
    eta: $("eta"),
    lossValue: $("loss-value"),
    message: $("job-message"),
    cancelForm: $("cancel-form"),
    cancelButton: $("cancel-button"),
    connection: $("connection-note"),
    liveStage: $("live-stage"),
    preview: $("preview-image"),
    previewPlaceholder: $("preview-placeholder"),
    previewCaption: $("preview-caption"),
    resultSection: $("result-section"),
    result: $("result-image"),
    download: $("download-link"),
    downloadJpeg: $("download-jpeg-link"),
    resultFrame: $("result-frame"),
    resultCaption: $("result-caption"),
    actualSize: $("actual-size-button"),
    compare: $("compare"),
    compareAfter: $("compare-after"),
    compareSlider: $("compare-slider"),
    chart: $("loss-chart"),
    lossSummary: $("loss-summary"),
  };

  let job = JSON.parse(dataElement.textContent);
  let receivedAt = performance.now(); // when `job` arrived: the clocks tick locally from there
  let shownPreviewUrl = job.preview_url;
  let rememberedKey = "";

  // --- formatting ----------------------------------------------------------------------------------

  function formatDuration(seconds) {
    if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "–";
    const total = Math.max(0, Math.round(seconds));
    if (total < 60) return `${total} s`;
    const hours = Math.floor(total / 3600);
    const minutes = Math.floor((total % 3600) / 60);
    const rest = total % 60;
    return hours ? `${hours} h ${minutes} min` : `${minutes} min ${rest} s`;
  }

  function formatLoss(value) {
    return typeof value === "number" && Number.isFinite(value) ? value.toPrecision(4) : "–";
  }

  // --- loss history (kept per tab in sessionStorage, so a reload keeps the curve) ---------------

  const historyKey = `atelier.loss.${job.id}`;
  let history = [];
  try {
    const saved = JSON.parse(window.sessionStorage.getItem(historyKey) || "[]");
    if (Array.isArray(saved)) history = saved.filter((point) => Array.isArray(point) && point.length === 2);
  } catch (error) {
    console.warn("Atelier: the saved loss history is unreadable; starting a new one", error);
  }

  function recordLoss(status) {
    const total = status.loss && status.loss.total;
    if (typeof total !== "number" || !Number.isFinite(total) || !(status.step > 0)) return;
    const last = history[history.length - 1];
    if (last && status.step < last[0]) history = []; // a redelivered job started over
    if (last && status.step === last[0]) last[1] = total;
    else history.push([status.step, total]);
    if (history.length > MAX_CHART_POINTS) {
      // Halve the resolution of the older half; the newest points stay exact.
      const half = Math.floor(history.length / 2);
      history = history.slice(0, half).filter((_, index) => index % 2 === 0).concat(history.slice(half));
    }
    try {
      window.sessionStorage.setItem(historyKey, JSON.stringify(history));
    } catch (error) {
      console.warn("Atelier: could not keep the loss history", error);
    }
  }

  const SVG_NS = "http://www.w3.org/2000/svg";
  function svg(name, attributes, text) {
    const node = document.createElementNS(SVG_NS, name);
    for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function drawChart(iterations) {
    if (history.length < 2) return;
    const width = 320, height = 150, left = 52, right = 8, top = 10, bottom = 24;
    const values = history.map((point) => point[1]);
    const min = Math.min(...values), max = Math.max(...values);
    // Style-transfer losses fall by orders of magnitude: a log scale keeps the tail readable.
    const useLog = min > 0 && max / min > 20;
    const scale = (value) => (useLog ? Math.log10(value) : value);
    const low = scale(min), high = scale(max);
    const span = high - low || 1;
    const lastStep = Math.max(iterations || 0, history[history.length - 1][0]);
    const x = (step) => left + ((width - left - right) * step) / lastStep;
    const y = (value) => top + (height - top - bottom) * (1 - (scale(value) - low) / span);

    const nodes = [
      svg("line", { class: "grid-line", x1: left, x2: width - right, y1: top, y2: top }),
      svg("line", { class: "grid-line", x1: left, x2: width - right, y1: height - bottom, y2: height - bottom }),
      svg("text", { class: "axis-text", x: left - 6, y: top + 4, "text-anchor": "end" }, formatLoss(max)),
      svg("text", { class: "axis-text", x: left - 6, y: height - bottom + 4, "text-anchor": "end" }, formatLoss(min)),
      svg("text", { class: "axis-text", x: left, y: height - 6 }, "step 0"),
      svg("text", { class: "axis-text", x: width - right, y: height - 6, "text-anchor": "end" }, `step ${lastStep}`),
      svg("polyline", {
        class: "loss-line",
        points: history.map(([step, value]) => `${x(step).toFixed(1)},${y(value).toFixed(1)}`).join(" "),
      }),
    ];
    if (useLog) nodes.push(svg("text", { class: "axis-text", x: left + 4, y: top + 14 }, "log scale"));
    el.chart.replaceChildren(...nodes);
    el.chart.removeAttribute("hidden"); // SVG elements have no `hidden` property
    const first = history[0], last = history[history.length - 1];
    el.lossSummary.textContent =
      `Total loss ${formatLoss(first[1])} at step ${first[0]}, ${formatLoss(last[1])} at step ${last[0]}.`;
  }

  // --- rendering -------------------------------------------------------------------------------------

  function setNote(text) {
    if (el.connection.textContent !== text) el.connection.textContent = text;
  }

  function renderClocks() {
    const running = job.status === "running";
    const sinceUpdate = (performance.now() - receivedAt) / 1000;
    if (job.status === "queued") {
      el.elapsed.textContent = "–";
    } else {
      el.elapsed.textContent = formatDuration((job.elapsed_seconds || 0) + (running ? sinceUpdate : 0));
    }
    if (running && typeof job.eta_seconds === "number") {
      el.eta.textContent = "about " + formatDuration(Math.max(0, job.eta_seconds - sinceUpdate));
    } else {
      el.eta.textContent = job.status === "succeeded" ? "done" : "–";
    }
  }

  function queueText(status) {
    if (status.cancel_requested) return "Cancelling…";
    if (status.storage_wait) {
      const why = status.storage_wait.charAt(0).toUpperCase() + status.storage_wait.slice(1);
      return `${why}. The job goes on by itself as soon as storage works again; nothing computed is lost.`;
    }
    if (status.handed_back) {
      return "Its worker was stopped: the next free worker resumes it from its last checkpoint.";
    }
    if (status.queue_position === 1) return "Next in line: a worker starts it as soon as it is free.";
    if (status.queue_position > 1) {
      const ahead = status.queue_position - 1;
      return `Waiting in the queue: ${ahead} job${ahead === 1 ? "" : "s"} ahead of yours.`;
    }
    return "Waiting for a worker.";
  }

  function showPreview(status) {
    if (!status.preview_url || status.preview_url === shownPreviewUrl) return;
    const url = status.preview_url;
    shownPreviewUrl = url;
    // Load off-screen first, so the visible image never flashes empty between previews.
    const loader = new Image();
    loader.addEventListener("load", () => {
      if (shownPreviewUrl !== url) return; // a newer preview is already on its way
      el.preview.src = url;
      el.preview.alt = `Live preview at step ${status.preview_step}`;
      el.preview.hidden = false;
      el.previewPlaceholder.hidden = true;
      el.previewCaption.textContent = `Preview at step ${status.preview_step}`;
    });
    loader.addEventListener("error", () => console.warn(`Atelier: preview ${url} did not load`));
    loader.src = url;
  }

  function showFinal(status) {
    el.cancelForm.hidden = true;
    el.queueNote.hidden = true;
    if (status.status === "failed") {
      el.message.textContent = `The job failed: ${status.error || "no reason was recorded"}`;
      el.message.classList.remove("job-message-neutral");
      el.message.hidden = false;
    } else if (status.status === "cancelled") {
      el.message.textContent = `The job was cancelled${status.error ? ` (${status.error})` : ""}.`;
      el.message.classList.add("job-message-neutral");
      el.message.hidden = false;
    }
    if (status.result_url) {
      if (el.result.getAttribute("src") !== status.result_url) {
        el.result.src = status.result_url;
        el.compareAfter.src = status.result_url;
        el.download.href = status.result_url;
        el.downloadJpeg.href = `${status.result_url}?format=jpeg`;
      }
      el.resultSection.hidden = false;
      el.liveStage.hidden = true;
    } else if (!status.preview_url) {
      el.previewPlaceholder.textContent = "No preview was made.";
      el.previewCaption.textContent = "";
    }
    if (history.length < 2) {
      // The API keeps only the latest loss: the curve exists only where a page watched the run.
      el.lossSummary.textContent = status.step < 2
        ? "No loss curve: the job ended before its second step."
        : `Final total loss ${formatLoss(status.loss && status.loss.total)}. The curve is drawn while a page watches the job run.`;
    }
  }

  // The tab shows the progress while the job runs, so it can be watched from the tab strip.
  function titleFor(status, label) {
    if (status.status === "running") return `${Math.floor((status.progress || 0) * 100)}% · Atelier`;
    return `${label} · job ${status.id.slice(0, 8)} · Atelier`;
  }

  function render(status) {
    const label = statusLabel(status.status);
    el.badge.className = `badge badge-${status.status}`;
    el.badge.textContent = label;
    el.root.dataset.status = status.status;
    document.title = titleFor(status, label);

    const waiting = status.status === "queued" || status.handed_back || Boolean(status.storage_wait);
    el.queueNote.hidden = !waiting;
    if (waiting) el.queueNote.textContent = queueText(status);

    const total = status.iterations || 1;
    const step = status.status === "succeeded" ? Math.max(status.step, total) : status.step;
    const percent = Math.floor((status.progress || 0) * 100);
    el.bar.max = total;
    // Work done, not steps: with coarse-to-fine scales the early steps are far cheaper.
    el.bar.value = status.status === "succeeded" ? total : Math.min((status.progress || 0) * total, total);
    el.bar.textContent = `${percent}%`;
    el.progressText.textContent = `Step ${status.step} of ${status.iterations}`;
    el.percent.textContent = `${percent}%`;
    el.lossValue.textContent = formatLoss(status.loss && status.loss.total);

    if (!FINISHED.has(status.status) && status.cancel_requested) {
      el.cancelButton.disabled = true;
      el.cancelButton.textContent = "Cancelling…";
    }

    recordLoss(status);
    drawChart(status.iterations);
    showPreview(status);
    if (FINISHED.has(status.status)) showFinal(status);
    if (status.video) renderVideo(status, el);
    renderClocks();

    const key = `${status.status} ${status.preview_url} ${status.result_url}`;
    if (key !== rememberedKey) {
      remember(status);
      rememberedKey = key;
    }
  }

  function apply(status) {
    const wasFinished = FINISHED.has(job.status);
    job = status;
    receivedAt = performance.now();
    render(status);
    if (!wasFinished && FINISHED.has(status.status)) notifications.finished(status, statusLabel(status.status));
  }

  function showExpired() {
    el.badge.className = `badge badge-${EXPIRED}`;
    el.badge.textContent = statusLabel(EXPIRED);
    el.cancelForm.hidden = true;
    el.message.textContent = "This job is no longer kept on the server.";
    el.message.hidden = false;
    setNote("");
  }

  // --- transport: SSE, then polling ----------------------------------------------------------------

  let pollFailures = 0;
  async function poll() {
    try {
      const response = await fetch(job.status_url, { cache: "no-store" });
      if (response.status === 404) return showExpired();
      if (!response.ok) throw new Error(`the server answered ${response.status}`);
      apply(await response.json());
      pollFailures = 0;
      setNote("");
    } catch (error) {
      pollFailures += 1;
      setNote(`Cannot reach the server (${error.message}); retrying…`);
    }
    if (FINISHED.has(job.status)) return;
    window.setTimeout(poll, Math.min(POLL_MS * 2 ** pollFailures, MAX_POLL_MS));
  }

  function follow() {
    if (FINISHED.has(job.status)) return;
    if (!("EventSource" in window)) {
      poll();
      return;
    }
    const source = new EventSource(`/api/jobs/${job.id}/events`);
    let failures = 0;
    source.addEventListener("message", (event) => {
      failures = 0;
      apply(JSON.parse(event.data));
    });
    source.addEventListener("end", (event) => {
      source.close();
      if (JSON.parse(event.data).status === "expired") showExpired();
    });
    source.addEventListener("error", () => {
      if (FINISHED.has(job.status)) {
        source.close();
        return;
      }
      // The server ends each stream after a while and EventSource reconnects by itself. Poll instead
      // when it gave up (an HTTP error) or keeps failing (a proxy that cuts or buffers streams).
      failures += 1;
      if (source.readyState === EventSource.CLOSED || failures >= 3) {
        source.close();
        console.warn("Atelier: the live event stream failed; polling the status instead");
        poll();
      }
    });
  }

  // --- cancel ------------------------------------------------------------------------------------------

  el.cancelForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    el.cancelButton.disabled = true;
    el.cancelButton.textContent = "Cancelling…";
    try {
      const response = await fetch(job.cancel_url, { method: "POST" });
      if (response.ok) {
        apply(await response.json());
      } else if (response.status !== 409) {
        // 409: it finished meanwhile, and the stream brings the final state.
        const body = await response.json().catch(() => ({}));
        throw new Error(body.detail || `the server answered ${response.status}`);
      }
    } catch (error) {
      el.cancelButton.disabled = false;
      el.cancelButton.textContent = "Cancel job";
      setNote(`Could not cancel: ${error.message}`);
    }
  });

  // --- the result: fitted to the page, or at 100% (one image pixel per CSS pixel) ------------------

  function showActualSize(actual) {
    el.resultFrame.classList.toggle("actual-size", actual);
    el.actualSize.setAttribute("aria-pressed", String(actual));
    el.actualSize.textContent = actual ? "Fit to page" : "View at 100%";
    const { naturalWidth: width, naturalHeight: height } = el.result;
    const size = width ? ` (${width} × ${height} px)` : "";
    el.resultCaption.textContent = actual ? `At 100%${size}: scroll to see all of it.` : `Fitted to the page${size}.`;
  }
  el.actualSize.addEventListener("click", () => showActualSize(!el.resultFrame.classList.contains("actual-size")));
  el.result.addEventListener("load", () => showActualSize(el.resultFrame.classList.contains("actual-size")));
  el.actualSize.hidden = false;
  showActualSize(false); // the caption gets the picture's size, if it has loaded already

  // --- before / after ------------------------------------------------------------------------------

  function updateCompare() {
    const split = Number(el.compareSlider.value);
    el.compare.style.setProperty("--split", `${split}%`);
    el.compareSlider.setAttribute("aria-valuetext", `${split}% before, ${100 - split}% after`);
  }
  el.compareSlider.addEventListener("input", updateCompare);
  updateCompare();

  const notifications = setUpNotifications($("notify-button"), () => FINISHED.has(job.status));
  render(job);
  window.setInterval(() => {
    if (job.status === "running") renderClocks();
  }, 1000);
  follow();
})();
