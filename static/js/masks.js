// "Paint where each style goes": the person paints each style's region on the content image (or
// uploads a mask image per style), and the form sends one greyscale mask PNG per style image, white
// where that style goes. Without this file the section is a plain upload field per style.
//
// The API's contract (docs/api.md): the multipart field `mask` comes either not at all or once per
// style image, in the styles' order; an empty file part means "no mask for this style".
import { ACCEPTED_NAMES, ACCEPTED_TYPES } from "/js/shared.js";

(function () {
  "use strict";

  const form = document.getElementById("job-form");
  const section = document.querySelector("[data-masks]");
  if (!form || !section) return;

  const contentInput = document.getElementById("content-input");
  const styleInputs = [document.getElementById("style-input"), document.getElementById("style2-input")];
  const maskInputs = Array.from(section.querySelectorAll("[data-mask-file]"));
  const painter = section.querySelector("[data-masks-painter]");
  const waiting = section.querySelector("[data-masks-waiting]");
  const canvas = section.querySelector("[data-mask-canvas]");
  const sizeInput = section.querySelector("[data-mask-size]");
  const sizeValue = section.querySelector("[data-mask-size-value]");
  const clearButton = section.querySelector("[data-mask-clear]");
  const clearAllButton = section.querySelector("[data-mask-clear-all]");
  const summary = section.querySelector("[data-mask-summary]");
  const targetRadios = Array.from(section.querySelectorAll("[data-mask-target]"));
  const toolRadios = Array.from(section.querySelectorAll("[data-mask-tool]"));
  const submitStatus = document.getElementById("submit-status");

  // What the server decodes (app/uploads.py, through the shared module).
  const IMAGE_TYPES = ACCEPTED_TYPES;
  const maxBytes = Number(form.dataset.maxBytes);
  // Masks are drawn at most at the largest output side: the engine resizes them to the output anyway.
  const maxSide = Number(section.dataset.maxSide) || 1024;
  // The server refuses a mask whose aspect ratio differs from the content's by more than this; the
  // page checks first, to say so at once.
  const OVERLAY_ALPHA = 0.55;
  // A pixel counts as painted from this coverage on (0..255): the eraser's soft edge leaves faint
  // traces that should not turn a style's mask on.
  const PAINTED_ALPHA = 16;
  const display = canvas.getContext("2d");

  // One slot per style image: its region (alpha of `layer`), the uploaded mask and what is sent.
  const slots = styleInputs.map((styleInput, index) => {
    const layer = document.createElement("canvas");
    const carrier = document.createElement("input");
    carrier.type = "file";
    carrier.name = "mask";
    carrier.hidden = true;
    carrier.disabled = true;
    carrier.tabIndex = -1;
    carrier.setAttribute("aria-hidden", "true");
    section.append(carrier);
    // With JavaScript the carrier is what is sent; the visible input only feeds the painting.
    maskInputs[index].removeAttribute("name");
    return {
      index,
      styleInput,
      fileInput: maskInputs[index],
      carrier,
      layer,
      layerContext: layer.getContext("2d", { willReadFrequently: true }),
      tint: document.createElement("canvas"),
      color: getComputedStyle(section).getPropertyValue(`--mask-color-${index + 1}`).trim() || "#888",
      problem: "",
      coverage: 0, // mean coverage of the picture, 0..1
      painted: false,
      fromFile: "", // name of the uploaded mask the layer started from
    };
  });

  // Once the content image decoded: {image, natural: its own {width, height}, width, height (the masks')}.
  let content = null;
  let contentUrl = null;
  let contentToken = 0; // ignores a content image that finished loading after a newer one was chosen
  let active = 0;
  let tool = "brush";
  let stroke = null; // the last point of the stroke being painted, or null
  let cursor = null; // where the brush outline is drawn, or null
  let penDown = false; // keyboard painting
  let redrawQueued = false;

  const announcer = document.createElement("p");
  announcer.className = "visually-hidden";
  announcer.setAttribute("aria-live", "polite");
  painter.append(announcer);

  // --- small helpers --------------------------------------------------------------------------

  function formatBytes(bytes) {
    if (bytes < 1024 * 1024) return (bytes / 1024).toFixed(0) + " KB";
    return (bytes / 1024 / 1024).toFixed(1) + " MB";
  }

  function setFiles(input, files) {
    const transfer = new DataTransfer();
    files.forEach((file) => transfer.items.add(file));
    input.files = transfer.files;
  }

  function showError(input, message) {
    const slot = document.getElementById(input.id + "-error");
    slot.textContent = message;
    input.closest(".field").classList.toggle("has-error", Boolean(message));
    if (message) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }

  function loadImage(file) {
    return new Promise((resolve, reject) => {
      const url = URL.createObjectURL(file);
      const image = new Image();
      image.onload = () => resolve({ image, url });
      image.onerror = () => {
        URL.revokeObjectURL(url);
        reject(new Error("undecodable"));
      };
      image.src = url;
    });
  }

  // Style 1's controls are always there (its image is required anyway); style 2's once it is chosen.
  function styleAvailable(slot) {
    return slot.index === 0 || styleChosen(slot);
  }

  // A slot's style is a file or a library painting (its checked radio button in the same field).
  function styleChosen(slot) {
    const painting = slot.styleInput.closest(".field").querySelector("input[data-painting]:checked");
    return slot.styleInput.files.length > 0 || Boolean(painting && painting.value);
  }

  function brushDiameter() {
    return (Number(sizeInput.value) / 100) * Math.max(canvas.width, canvas.height);
  }

  // --- drawing ----------------------------------------------------------------------------------

  function queueRedraw() {
    if (redrawQueued) return;
    redrawQueued = true;
    requestAnimationFrame(() => {
      redrawQueued = false;
      redraw();
    });
  }

  // The photo with each style's region over it in the style's colour, and the brush outline.
  function redraw() {
    if (!content) return;
    const { width, height } = canvas;
    display.globalAlpha = 1;
    display.globalCompositeOperation = "source-over";
    display.drawImage(content.image, 0, 0, width, height);
    for (const slot of slots) {
      if (!styleAvailable(slot) || !slot.painted) continue;
      const tint = slot.tint.getContext("2d");
      tint.globalCompositeOperation = "copy";
      tint.drawImage(slot.layer, 0, 0);
      tint.globalCompositeOperation = "source-in";
      tint.fillStyle = slot.color;
      tint.fillRect(0, 0, width, height);
      display.globalAlpha = OVERLAY_ALPHA;
      display.drawImage(slot.tint, 0, 0);
    }
    display.globalAlpha = 1;
    if (cursor) {
      const radius = Math.max(brushDiameter() / 2, 1);
      const line = Math.max(width, height) / 400;
      display.beginPath();
      display.arc(cursor.x, cursor.y, radius, 0, 2 * Math.PI);
      display.lineWidth = 3 * line;
      display.strokeStyle = "rgb(0 0 0 / 70%)";
      display.stroke();
      display.lineWidth = line;
      display.strokeStyle = penDown || stroke ? slots[active].color : "#fff";
      display.stroke();
    }
  }

  function paintSegment(context, from, to, diameter, operation) {
    context.save();
    context.globalCompositeOperation = operation;
    context.fillStyle = "#fff";
    context.strokeStyle = "#fff";
    context.lineWidth = diameter;
    context.lineCap = "round";
    context.lineJoin = "round";
    context.beginPath();
    if (from.x === to.x && from.y === to.y) {
      // A zero-length line is not stroked at all: a click paints a dot.
      context.arc(to.x, to.y, diameter / 2, 0, 2 * Math.PI);
      context.fill();
    } else {
      context.moveTo(from.x, from.y);
      context.lineTo(to.x, to.y);
      context.stroke();
    }
    context.restore();
  }

  // The brush paints the chosen style and takes the same spot from the other styles (one style per
  // place); the eraser makes the spot unpainted for every style.
  function paint(from, to) {
    const diameter = brushDiameter();
    for (const slot of slots) {
      const erase = tool === "eraser" || slot.index !== active;
      if (erase && !slot.painted) continue;
      paintSegment(slot.layerContext, from, to, diameter, erase ? "destination-out" : "source-over");
      if (!erase) slot.painted = true;
    }
    queueRedraw();
  }

  // Measures each region (for the summary, and to know which styles send a mask).
  function measure() {
    if (!content) return;
    const pixels = canvas.width * canvas.height;
    for (const slot of slots) {
      const data = slot.layerContext.getImageData(0, 0, canvas.width, canvas.height).data;
      let sum = 0;
      let painted = false;
      for (let i = 3; i < data.length; i += 4) {
        sum += data[i];
        if (data[i] >= PAINTED_ALPHA) painted = true;
      }
      slot.coverage = sum / 255 / pixels;
      slot.painted = painted;
      if (!painted) slot.fromFile = "";
    }
    updateSummary();
  }

  // An uploaded mask the page cannot draw (TIFF, or no photo shown to draw it on): sent as it is.
  function rawMask(slot) {
    const file = slot.fileInput.files[0];
    if (!file || slot.problem || (content && slot.painted)) return null;
    return !content || file.type === "image/tiff" ? file : null;
  }

  function hasMask(slot) {
    return (content && slot.painted) || rawMask(slot) !== null;
  }

  function updateSummary() {
    summary.replaceChildren();
    const available = slots.filter(styleAvailable);
    const lines = [];
    if (!available.some(hasMask)) {
      lines.push("Nothing painted yet: every style goes everywhere, as without masks.");
    } else {
      for (const slot of available) {
        const name = `Style ${slot.index + 1}`;
        const raw = rawMask(slot);
        if (raw) lines.push(`${name}: mask ${raw.name}, sent as it is (this browser cannot show it).`);
        else if (!slot.painted) lines.push(`${name}: nothing painted, so it goes everywhere.`);
        else {
          const share = Math.max(1, Math.round(slot.coverage * 100));
          const source = slot.fromFile ? ` (from ${slot.fromFile})` : "";
          lines.push(`${name}: painted on about ${share}% of the picture${source}.`);
        }
      }
      if (available.every(hasMask)) lines.push("Unpainted parts keep the photo unstyled.");
    }
    if (!styleAvailable(slots[1])) lines.push("Add a second style image to paint a region for it too.");
    for (const line of lines) {
      const item = document.createElement("li");
      item.textContent = line;
      summary.append(item);
    }
  }

  function updateControls() {
    for (const slot of slots) {
      const available = styleAvailable(slot);
      targetRadios[slot.index].disabled = !available;
      slot.fileInput.disabled = !available;
      if (!available && active === slot.index) active = 0;
    }
    targetRadios[active].checked = true;
    clearButton.textContent = `Clear style ${active + 1}`;
    clearButton.setAttribute("aria-label", `Clear the paint of style ${active + 1}`);
    sizeInput.setAttribute("aria-valuetext", `${sizeInput.value}% of the picture`);
    sizeValue.textContent = `${sizeInput.value}%`;
    updateSummary();
    queueRedraw();
  }

  // --- the content image: the canvas takes its shape ----------------------------------------

  // Mask resolution: the content's own size, scaled down to the largest output side, but keeping a
  // short side of at least 64 px where the photo has one, so rounding changes the aspect ratio by
  // under 1 % (0.5 / 64), within what the server accepts.
  function maskSize(width, height) {
    let scale = Math.min(1, maxSide / Math.max(width, height));
    const short = Math.min(width, height);
    if (short * scale < 64) scale = Math.min(1, 64 / short);
    return { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) };
  }

  function resizeLayers(width, height, keep) {
    for (const slot of slots) {
      let old = null;
      if (keep && slot.painted) {
        old = document.createElement("canvas");
        old.width = slot.layer.width;
        old.height = slot.layer.height;
        old.getContext("2d").drawImage(slot.layer, 0, 0);
      }
      slot.layer.width = slot.tint.width = width;
      slot.layer.height = slot.tint.height = height;
      if (old) slot.layerContext.drawImage(old, 0, 0, width, height);
      else {
        slot.painted = false;
        slot.fromFile = "";
      }
    }
  }

  async function contentChanged() {
    const token = ++contentToken;
    const file = contentInput.files[0];
    const previous = content;
    content = null;
    if (contentUrl) URL.revokeObjectURL(contentUrl);
    contentUrl = null;
    painter.hidden = true;
    waiting.hidden = false;
    if (!file) {
      waiting.textContent = "Choose a content image first: you paint on it.";
      return;
    }
    if (!IMAGE_TYPES.includes(file.type) || file.type === "image/tiff") {
      waiting.textContent =
        "This browser cannot show your content image, so painting is not available here; upload a mask image per style instead.";
      return;
    }
    waiting.textContent = "Loading your photo…";
    let loaded;
    try {
      loaded = await loadImage(file);
    } catch {
      if (token === contentToken) waiting.textContent = "Your content image could not be read, so there is nothing to paint on.";
      return;
    }
    if (token !== contentToken) {
      URL.revokeObjectURL(loaded.url);
      return;
    }
    contentUrl = loaded.url;
    const natural = { width: loaded.image.naturalWidth, height: loaded.image.naturalHeight };
    const size = maskSize(natural.width, natural.height);
    // Paint made on a photo of the same shape still fits the new one; on another shape it would not.
    const sameShape = previous && !(await maskRefusal(previous.natural, natural));
    const hadPaint = slots.some((slot) => slot.painted);
    canvas.width = size.width;
    canvas.height = size.height;
    canvas.style.setProperty("--mask-ratio", String(size.width / size.height));
    resizeLayers(size.width, size.height, Boolean(sameShape));
    content = { image: loaded.image, natural, ...size };
    waiting.hidden = true;
    painter.hidden = false;
    if (hadPaint && !sameShape) announce("The new photo has another shape, so the paint was cleared.");
    // Mask images chosen before the photo are drawn now that the canvas has its shape.
    for (const slot of slots) {
      if (slot.fileInput.files.length && !slot.painted) await applyMaskFile(slot);
    }
    measure();
    updateControls();
  }

  // --- uploaded mask images ---------------------------------------------------------------------

  function checkMaskFile(file) {
    if (!IMAGE_TYPES.includes(file.type)) {
      return `“${file.name}” is not an image Atelier can read. Choose a ${ACCEPTED_NAMES} file.`;
    }
    if (file.size === 0) return `“${file.name}” is empty.`;
    if (file.size > maxBytes) return `“${file.name}” is ${formatBytes(file.size)}; the limit is ${formatBytes(maxBytes)}.`;
    return "";
  }

  // Why a mask of this size does not fit a photo of that size, as the server's run plan decides
  // (POST /api/plan), or "" when it fits. The submission checks it again, so a plan the server
  // cannot answer lets the mask through.
  async function maskRefusal(mask, photo) {
    const body = { content: photo, styles: [photo], masks: [mask] };
    try {
      const response = await fetch("/api/plan", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      if (!response.ok) return "";
      const refusal = (await response.json()).refusals.find((found) => found.field === "mask");
      return refusal ? refusal.message : "";
    } catch {
      return "";
    }
  }

  // Draws an uploaded mask into the style's region: its brightness becomes the coverage.
  async function applyMaskFile(slot) {
    const file = slot.fileInput.files[0];
    if (!file || !content) return;
    if (file.type === "image/tiff") {
      // Browsers do not decode TIFF: the file replaces this style's paint and is sent as it is.
      slot.layerContext.clearRect(0, 0, slot.layer.width, slot.layer.height);
      slot.painted = false;
      slot.fromFile = "";
      return;
    }
    let loaded;
    try {
      loaded = await loadImage(file);
    } catch {
      slot.problem = `“${file.name}” could not be read as an image; it may be damaged or not really an image.`;
      showError(slot.fileInput, slot.problem);
      return;
    }
    const { image, url } = loaded;
    URL.revokeObjectURL(url);
    if (await maskRefusal({ width: image.naturalWidth, height: image.naturalHeight }, content.natural)) {
      slot.problem =
        `“${file.name}” is ${image.naturalWidth}×${image.naturalHeight}, which is not the shape of your photo ` +
        `(${content.natural.width}×${content.natural.height}); a mask must have the photo's proportions.`;
      showError(slot.fileInput, slot.problem);
      return;
    }
    const { width, height } = canvas;
    const scratch = document.createElement("canvas");
    scratch.width = width;
    scratch.height = height;
    const context = scratch.getContext("2d", { willReadFrequently: true });
    context.drawImage(image, 0, 0, width, height);
    const pixels = context.getImageData(0, 0, width, height);
    const data = pixels.data;
    for (let i = 0; i < data.length; i += 4) {
      // Rec. 601 luma, as Pillow's convert("L"); a transparent pixel is black.
      const luma = (data[i] * 299 + data[i + 1] * 587 + data[i + 2] * 114) / 1000;
      data[i + 3] = Math.round((luma * data[i + 3]) / 255);
      data[i] = data[i + 1] = data[i + 2] = 255;
    }
    slot.layerContext.putImageData(pixels, 0, 0);
    slot.painted = true;
    measure();
    slot.fromFile = slot.painted ? file.name : "";
    updateSummary();
    queueRedraw();
  }

  async function maskFileChanged(slot) {
    const file = slot.fileInput.files[0];
    slot.problem = file ? checkMaskFile(file) : "";
    showError(slot.fileInput, slot.problem);
    if (file && !slot.problem && content) {
      active = slot.index;
      await applyMaskFile(slot);
    }
    updateControls();
  }

  // --- pointer and keyboard painting ------------------------------------------------------------

  function canvasPoint(event) {
    const box = canvas.getBoundingClientRect();
    return {
      x: ((event.clientX - box.left) / box.width) * canvas.width,
      y: ((event.clientY - box.top) / box.height) * canvas.height,
    };
  }

  canvas.addEventListener("pointerdown", (event) => {
    if (!content || event.button !== 0) return;
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId);
    canvas.focus({ preventScroll: true });
    const point = canvasPoint(event);
    stroke = point;
    cursor = point;
    paint(point, point);
  });

  canvas.addEventListener("pointermove", (event) => {
    if (!content) return;
    const point = canvasPoint(event);
    cursor = point;
    if (stroke) {
      paint(stroke, point);
      stroke = point;
    } else queueRedraw();
  });

  function endStroke() {
    if (!stroke) return;
    stroke = null;
    measure();
    queueRedraw();
  }
  canvas.addEventListener("pointerup", endStroke);
  canvas.addEventListener("pointercancel", endStroke);
  canvas.addEventListener("pointerleave", () => {
    if (stroke) return; // captured: the stroke goes on outside the canvas
    cursor = null;
    queueRedraw();
  });

  const KEY_STEPS = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };

  function announce(message) {
    announcer.textContent = message;
  }

  canvas.addEventListener("focus", () => {
    if (!cursor && content) cursor = { x: canvas.width / 2, y: canvas.height / 2 };
    queueRedraw();
  });
  canvas.addEventListener("blur", () => {
    if (penDown) measure();
    penDown = false;
    cursor = null;
    queueRedraw();
  });

  canvas.addEventListener("keydown", (event) => {
    if (!content) return;
    if (!cursor) cursor = { x: canvas.width / 2, y: canvas.height / 2 };
    if (event.key === " " || event.key === "Enter") {
      event.preventDefault();
      penDown = !penDown;
      if (penDown) paint(cursor, cursor);
      else measure();
      announce(penDown ? `${tool === "eraser" ? "Eraser" : `Brush for style ${active + 1}`} down` : "Lifted");
      queueRedraw();
      return;
    }
    if (event.key === "Escape" && penDown) {
      penDown = false;
      measure();
      announce("Lifted");
      queueRedraw();
      return;
    }
    const step = KEY_STEPS[event.key];
    if (!step) return;
    event.preventDefault();
    const distance = event.shiftKey ? brushDiameter() : Math.max(1, brushDiameter() / 4);
    const previous = cursor;
    const next = {
      x: Math.min(canvas.width, Math.max(0, cursor.x + step[0] * distance)),
      y: Math.min(canvas.height, Math.max(0, cursor.y + step[1] * distance)),
    };
    cursor = next;
    if (penDown) {
      paint(previous, next);
      measure(); // key presses are few: the summary can follow each one
    }
    queueRedraw();
  });

  // --- tools --------------------------------------------------------------------------------------

  targetRadios.forEach((radio) =>
    radio.addEventListener("change", () => {
      active = Number(radio.value);
      updateControls();
    }),
  );
  toolRadios.forEach((radio) =>
    radio.addEventListener("change", () => {
      tool = radio.value;
    }),
  );
  sizeInput.addEventListener("input", updateControls);

  function clearSlot(slot) {
    slot.fileInput.value = ""; // the uploaded mask goes too, or it would still be named there
    slot.problem = "";
    showError(slot.fileInput, "");
    slot.layerContext.clearRect(0, 0, slot.layer.width, slot.layer.height);
    slot.painted = false;
    slot.coverage = 0;
    slot.fromFile = "";
  }
  clearButton.addEventListener("click", () => {
    clearSlot(slots[active]);
    announce(`Style ${active + 1}'s paint cleared.`);
    updateControls();
  });
  clearAllButton.addEventListener("click", () => {
    slots.forEach(clearSlot);
    announce("All paint cleared.");
    updateControls();
  });

  contentInput.addEventListener("change", contentChanged);
  styleInputs.forEach((input) => input.addEventListener("change", updateControls));
  form.querySelectorAll("input[data-painting]").forEach((radio) => radio.addEventListener("change", updateControls));
  form.addEventListener("library-change", updateControls);
  slots.forEach((slot) => slot.fileInput.addEventListener("change", () => maskFileChanged(slot)));

  // --- submit: one mask PNG per style image, or none at all ------------------------------------

  // White where the style goes, black elsewhere, soft at the brush's edges; opaque greyscale.
  function maskFile(slot) {
    const out = document.createElement("canvas");
    out.width = slot.layer.width;
    out.height = slot.layer.height;
    const context = out.getContext("2d");
    const white = slot.tint.getContext("2d");
    white.globalCompositeOperation = "copy";
    white.drawImage(slot.layer, 0, 0);
    white.globalCompositeOperation = "source-in";
    white.fillStyle = "#fff";
    white.fillRect(0, 0, out.width, out.height);
    context.fillStyle = "#000";
    context.fillRect(0, 0, out.width, out.height);
    context.drawImage(slot.tint, 0, 0);
    queueRedraw(); // the tint canvas is the overlay's scratch space too
    // Synchronous on purpose: the form's data is gathered right after this submit handler returns.
    const encoded = atob(out.toDataURL("image/png").split(",")[1]);
    const bytes = new Uint8Array(encoded.length);
    for (let i = 0; i < encoded.length; i += 1) bytes[i] = encoded.charCodeAt(i);
    return new File([bytes], `mask-style-${slot.index + 1}.png`, { type: "image/png" });
  }

  function fillCarriers() {
    const chosen = slots.filter(styleChosen);
    for (const slot of slots) {
      slot.carrier.disabled = true;
      setFiles(slot.carrier, []);
    }
    if (!chosen.some(hasMask)) return; // no mask part at all: every style goes everywhere
    const files = chosen.map((slot) => {
      if (content && slot.painted) return [maskFile(slot)];
      const raw = rawMask(slot);
      return raw ? [raw] : []; // an empty part: no mask for this style
    });
    chosen.forEach((slot, position) => {
      slot.carrier.disabled = false;
      setFiles(slot.carrier, files[position]);
    });
  }

  // Capture phase: runs before upload.js's handler, which then checks the other fields.
  form.addEventListener(
    "submit",
    (event) => {
      const invalid = slots.find((slot) => styleAvailable(slot) && slot.problem);
      if (invalid) {
        event.preventDefault();
        event.stopImmediatePropagation();
        section.open = true;
        showError(invalid.fileInput, invalid.problem);
        if (submitStatus) submitStatus.textContent = "Please fix the highlighted field first.";
        invalid.fileInput.focus();
        return;
      }
      fillCarriers();
    },
    true,
  );

  waiting.hidden = false;
  updateControls();
})();
