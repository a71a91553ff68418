// This browser's recent jobs and batches, kept in localStorage: the job page remembers each job it
// shows (job.js imports remember), a batch's page its batch (batch.js: rememberBatch); the home page
// lists them with a thumbnail and refreshes the status of unfinished ones.
import { EXPIRED, isFinal, statusLabel } from "/js/shared.js";

const STORAGE_KEY = "atelier.recentJobs";
const LIMIT = 12;

export function load() {
  let raw = null;
  try {
    raw = window.localStorage.getItem(STORAGE_KEY);
  } catch (error) {
    console.warn("Atelier: localStorage is not available, recent jobs are not kept", error);
    return [];
  }
  if (!raw) return [];
  try {
    const list = JSON.parse(raw);
    return Array.isArray(list) ? list.filter((job) => job && typeof job.id === "string") : [];
  } catch (error) {
    console.warn("Atelier: the recent jobs list was unreadable and is reset", error);
    return [];
  }
}

function save(list) {
  try {
    window.localStorage.setItem(STORAGE_KEY, JSON.stringify(list.slice(0, LIMIT)));
  } catch (error) {
    console.warn("Atelier: could not save the recent jobs list", error);
  }
}

function thumbnailOf(status) {
  const animated = status.video && status.video.animated_url; // a clip: its animated WebP
  return animated || status.result_url || status.preview_url || status.content_url || `/api/jobs/${status.id}/content`;
}

// Record (or update) a job from its status JSON; new jobs go to the top of the list.
export function remember(status) {
  const list = load();
  const entry = {
    id: status.id,
    status: status.status,
    thumbnail: thumbnailOf(status),
    created_at: status.created_at || new Date().toISOString(),
  };
  const index = list.findIndex((job) => job.id === status.id);
  if (index >= 0) list[index] = entry;
  else list.unshift(entry);
  save(list);
}

// Record (or update) a batch from its status JSON (GET /api/batches/{id}): listed like a job, its
// badge the batch's state (a finished batch reads "Done"), its picture its first result.
export function rememberBatch(status) {
  const list = load();
  const first = status.jobs.find((job) => job.result_url) || status.jobs[0];
  const entry = {
    id: status.id,
    kind: "batch",
    jobs: status.totals.jobs,
    status: status.status === "finished" ? "succeeded" : status.status,
    thumbnail: (first && (first.result_url || first.content_url)) || "",
    created_at: status.created_at || new Date().toISOString(),
  };
  const index = list.findIndex((item) => item.id === status.id);
  if (index >= 0) list[index] = entry;
  else list.unshift(entry);
  save(list);
}

function markExpired(id) {
  const list = load();
  const job = list.find((item) => item.id === id);
  if (!job) return;
  job.status = EXPIRED;
  save(list);
}

function formatCreated(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  return date.toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

function renderItem(job) {
  const item = document.createElement("li");
  item.className = "recent-item";
  item.dataset.jobId = job.id;
  const link = document.createElement("a");
  const batch = job.kind === "batch";
  link.href = batch ? `/batches/${job.id}` : `/jobs/${job.id}`;
  const thumb = document.createElement("img");
  thumb.className = "recent-thumb";
  thumb.alt = "";
  thumb.loading = "lazy";
  if (job.status !== EXPIRED) thumb.src = job.thumbnail;
  const meta = document.createElement("span");
  meta.className = "recent-meta";
  const badge = document.createElement("span");
  badge.className = `badge badge-${job.status}`;
  badge.textContent = statusLabel(job.status);
  const when = document.createElement("time");
  when.dateTime = job.created_at;
  when.textContent = formatCreated(job.created_at);
  meta.append(badge, when);
  const name = document.createElement("span");
  name.className = "visually-hidden";
  name.textContent = batch ? `Batch ${job.id.slice(0, 8)}, ` : `Job ${job.id.slice(0, 8)}, `;
  link.append(name, thumb, meta);
  if (batch) {
    const count = document.createElement("span");
    count.className = "recent-batch";
    count.textContent = `Batch of ${job.jobs}`;
    meta.append(count);
  }
  item.append(link);
  return item;
}

function render() {
  const listElement = document.getElementById("recent-list");
  if (!listElement) return;
  const jobs = load();
  listElement.replaceChildren(...jobs.map(renderItem));
  document.getElementById("recent-empty").hidden = jobs.length > 0;
}

// Ask the server about unfinished jobs once, so the list is not stuck at "Running".
async function refreshUnfinished() {
  const unfinished = load().filter((job) => !isFinal(job.status));
  await Promise.all(
    unfinished.map(async (job) => {
      const batch = job.kind === "batch";
      const response = await fetch(batch ? `/api/batches/${job.id}` : `/api/jobs/${job.id}`, { cache: "no-store" });
      if (response.status === 404) markExpired(job.id);
      else if (response.ok) (batch ? rememberBatch : remember)(await response.json());
      else console.warn(`Atelier: status of job ${job.id} answered ${response.status}`);
    })
  );
  if (unfinished.length) render();
}

if (document.getElementById("recent-list")) {
  render();
  refreshUnfinished().catch((error) => console.warn("Atelier: could not refresh recent jobs", error));
}
