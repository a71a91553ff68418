// A video job on its page (docs/video.md): progress as "frame 7 of 36, step 20 of 40", the latest
// finished frame as the live preview (job.js shows it), then the result played in <video> with a
// before/after toggle that keeps the playing position. job.js calls renderVideo on every status.

let shownVideoUrl = null;
let showingBefore = false;

function $(id) {
  return document.getElementById(id);
}

function capitalised(text) {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function switchTo(player, url) {
  const at = player.currentTime;
  const playing = !player.paused;
  player.src = url;
  player.addEventListener(
    "loadedmetadata",
    () => {
      player.currentTime = Math.min(at, player.duration || at);
      if (playing) player.play().catch(() => {});
    },
    { once: true },
  );
}

function setUpToggle(video) {
  const toggle = $("video-toggle");
  const player = $("result-video");
  const caption = $("video-caption");
  if (!toggle || toggle.dataset.ready) return;
  toggle.dataset.ready = "1";
  toggle.addEventListener("click", () => {
    showingBefore = !showingBefore;
    toggle.setAttribute("aria-pressed", String(showingBefore));
    toggle.textContent = showingBefore ? "Show after" : "Show before";
    switchTo(player, showingBefore ? video.input_url : video.video_url);
    caption.textContent = showingBefore
      ? "Before: your clip at the result's rate and size."
      : `After: the stylised clip, ${video.frames_done} frames at ${video.fps} fps.`;
  });
}

export function renderVideo(status, el) {
  const video = status.video;
  if (status.status === "running" && video.progress_text) {
    el.progressText.textContent = capitalised(video.progress_text);
  } else if (status.status === "queued" || (status.status === "running" && !video.frame)) {
    el.progressText.textContent = `Frame 0 of ${video.frames}`;
  } else if (status.status !== "running") {
    el.progressText.textContent = `${video.frames_done} of ${video.frames} frames done`;
  }
  const section = $("video-section");
  if (!section || !video.video_url) return;
  el.resultSection.hidden = true; // the stills of a clip: its frames, in the ZIP
  el.liveStage.hidden = true;
  section.hidden = false;
  if (shownVideoUrl !== video.video_url) {
    shownVideoUrl = video.video_url;
    const player = $("result-video");
    if (!showingBefore) player.src = video.video_url;
    $("video-download").href = video.video_url;
    $("frames-download").href = video.frames_zip_url;
    $("video-caption").textContent = `After: the stylised clip, ${video.frames_done} frames at ${video.fps} fps.`;
    setUpToggle(video);
  }
}
