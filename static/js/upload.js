// The upload page: thumbnails, checks before upload, the library's paintings and example photos, the
// style mix slider, preset hints and "use this style again". The form is a plain multipart POST to
// /jobs and works without this file (the paintings and examples are radio buttons there).
import { ACCEPTED_NAMES, ACCEPTED_TYPES, VIDEO_TYPES } from "/js/shared.js";

(function () {
  "use strict";

  const form = document.getElementById("job-form");
  if (!form) return;

  // What the server decodes (app/uploads.py, through the shared module); browsers name them so.
  const IMAGE_TYPES = ACCEPTED_TYPES;
  const PREVIEWABLE_BY_BROWSER = (type) => type !== "image/tiff";
  const maxBytes = Number(form.dataset.maxBytes);

  const contentInput = document.getElementById("content-input");
  const styleInput = document.getElementById("style-input");
  const style2Input = document.getElementById("style2-input");
  const blendInput = document.getElementById("blend");
  const submitButton = document.getElementById("submit-button");
  const submitStatus = document.getElementById("submit-status");

  function formatBytes(bytes) {
    if (bytes < 1024) return bytes + " bytes";
    if (bytes < 1024 * 1024) return (bytes / 1024).toFixed(0) + " KB";
    return (bytes / 1024 / 1024).toFixed(1) + " MB";
  }

  function fieldOf(element) {
    return element.closest(".field");
  }

  function showError(input, message) {
    const field = fieldOf(input);
    const slot = field.querySelector("[data-error]");
    slot.textContent = message;
    field.classList.toggle("has-error", Boolean(message));
    if (message) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }

  // --- image drop zones ------------------------------------------------------------------------

  // Per input: the problem with its chosen file ("" when fine), so submit can refuse early.
  const fileProblems = new Map();

  // The content may be a clip (docs/video.md): the server probes it and names any problem.
  const isVideo = (input, file) =>
    input === contentInput && (VIDEO_TYPES.includes(file.type) || /\.(mp4|m4v|mov|webm|mkv)$/i.test(file.name));

  function checkFile(file, input) {
    if (isVideo(input, file)) {
      if (file.size === 0) return `“${file.name}” is empty.`;
      return file.size > maxBytes ? `“${file.name}” is ${formatBytes(file.size)}; the limit is ${formatBytes(maxBytes)}.` : "";
    }
    if (!IMAGE_TYPES.includes(file.type)) {
      return `“${file.name}” is not an image Atelier can read. Choose a ${ACCEPTED_NAMES} file.`;
    }
    if (file.size === 0) return `“${file.name}” is empty.`;
    if (file.size > maxBytes) {
      return `“${file.name}” is ${formatBytes(file.size)}; the limit is ${formatBytes(maxBytes)}.`;
    }
    return "";
  }

  function setupDropzone(input) {
    const field = fieldOf(input);
    const zone = field.querySelector("[data-dropzone]");
    const thumb = field.querySelector("[data-thumb]");
    const filename = field.querySelector("[data-filename]");
    let objectUrl = null;

    // Only JS can empty a file input, so the "Remove" button exists only when JS runs.
    const removeButton = document.createElement("button");
    removeButton.type = "button";
    removeButton.className = "button button-secondary button-small";
    removeButton.textContent = "Remove";
    removeButton.hidden = true;
    removeButton.setAttribute("aria-label", "Remove " + field.querySelector("label").textContent.trim());
    // Keep the file name and its Remove button on one line.
    const row = document.createElement("div");
    row.className = "file-row";
    filename.replaceWith(row);
    row.append(filename, removeButton);
    removeButton.addEventListener("click", () => {
      if (input.files.length) {
        input.value = "";
        input.dispatchEvent(new Event("change", { bubbles: true }));
      }
      input.focus();
    });

    function clearThumb() {
      if (objectUrl) URL.revokeObjectURL(objectUrl);
      objectUrl = null;
      thumb.hidden = true;
      thumb.removeAttribute("src");
      zone.classList.remove("has-file");
    }

    // A style slot's paintings (templates/index.html, "Choose a painting"): a slot holds a file or a
    // painting, never both, so choosing one empties the other.
    const paintings = Array.from(field.querySelectorAll("input[data-painting]"));
    const noPainting = paintings.find((radio) => !radio.value);

    function showPainting() {
      const chosen = chosenPainting(input);
      if (!chosen) return false;
      clearThumb();
      thumb.alt = "Thumbnail of " + chosen.dataset.credit;
      thumb.src = chosen.dataset.thumbnail;
      thumb.hidden = false;
      zone.classList.add("has-file");
      filename.textContent = "Painting: " + chosen.dataset.credit;
      removeButton.hidden = false;
      fileProblems.set(input, "");
      showError(input, "");
      return true;
    }

    paintings.forEach((radio) =>
      radio.addEventListener("change", () => {
        if (input.files.length) {
          input.value = "";
          input.dispatchEvent(new Event("change", { bubbles: true }));
        } else if (!showPainting()) {
          clearThumb();
          filename.textContent = "";
          removeButton.hidden = true;
        }
      }),
    );

    removeButton.addEventListener("click", () => {
      if (!chosenPainting(input) || !noPainting) return;
      noPainting.checked = true;
      noPainting.dispatchEvent(new Event("change", { bubbles: true }));
    });

    input.addEventListener("change", () => {
      clearThumb();
      const file = input.files[0];
      if (file && noPainting && chosenPainting(input)) {
        noPainting.checked = true; // the file replaces the painting
        noPainting.dispatchEvent(new Event("library-change", { bubbles: true }));
      }
      if (!file && showPainting()) return;
      removeButton.hidden = !file;
      if (!file) {
        filename.textContent = "";
        fileProblems.set(input, "");
        showError(input, "");
        return;
      }
      filename.textContent = `${file.name} · ${formatBytes(file.size)}`;
      const problem = checkFile(file, input);
      fileProblems.set(input, problem);
      showError(input, problem);
      if (problem || !PREVIEWABLE_BY_BROWSER(file.type) || (isVideo(input, file) && file.type !== "image/gif")) return;
      objectUrl = URL.createObjectURL(file);
      thumb.alt = "Thumbnail of " + file.name;
      thumb.src = objectUrl;
      thumb.hidden = false;
      zone.classList.add("has-file");
    });

    // A file whose bytes the browser cannot decode would be refused by the server too.
    thumb.addEventListener("error", () => {
      if (!thumb.getAttribute("src")) return;
      const name = input.files[0] ? input.files[0].name : "This file";
      const problem = `“${name}” could not be read as an image; it may be damaged or not really an image.`;
      clearThumb();
      fileProblems.set(input, problem);
      showError(input, problem);
    });

    // The input covers the zone, so the browser drops files into it natively; this only highlights.
    let depth = 0;
    zone.addEventListener("dragenter", () => {
      depth += 1;
      zone.classList.add("is-dragover");
    });
    zone.addEventListener("dragleave", () => {
      depth = Math.max(0, depth - 1);
      if (depth === 0) zone.classList.remove("is-dragover");
    });
    zone.addEventListener("drop", () => {
      depth = 0;
      zone.classList.remove("is-dragover");
    });
    showPainting(); // a painting the server rendered as chosen (the form shown again after a refusal)
  }

  // The slot's chosen painting (its checked radio button), or null.
  function chosenPainting(input) {
    const checked = fieldOf(input).querySelector("input[data-painting]:checked");
    return checked && checked.value ? checked : null;
  }

  // A style slot holds a style: a file or a painting.
  function styleChosen(input) {
    return input.files.length > 0 || chosenPainting(input) !== null;
  }

  [contentInput, styleInput, style2Input].forEach(setupDropzone);

  // --- style mix ---------------------------------------------------------------------------------

  const blendHelp = document.querySelector("[data-blend-help]");
  function updateBlend() {
    const hasSecond = styleChosen(style2Input);
    blendInput.disabled = !hasSecond;
    const first = Math.round(Number(blendInput.value) * 100);
    blendInput.setAttribute("aria-valuetext", `${first}% first style, ${100 - first}% second style`);
    blendHelp.textContent = hasSecond
      ? `${first}% first style, ${100 - first}% second style.`
      : "Add a second style image to mix two styles.";
  }
  blendInput.addEventListener("input", updateBlend);
  style2Input.addEventListener("change", updateBlend);
  fieldOf(style2Input)
    .querySelectorAll("input[data-painting]")
    .forEach((radio) => radio.addEventListener("change", updateBlend));
  form.addEventListener("library-change", updateBlend);
  updateBlend();

  // --- presets: show what an empty size / iterations field means --------------------------------

  const sizeInput = document.getElementById("size");
  const iterationsInput = document.getElementById("iterations");
  const ladderInput = document.getElementById("ladder_start");
  const ladderDefault = ladderInput ? ladderInput.placeholder : "";
  function updatePresetHints() {
    const preset = form.querySelector("input[name=preset]:checked");
    if (!preset) return;
    sizeInput.placeholder = `${preset.dataset.size} (from preset)`;
    iterationsInput.placeholder = `${preset.dataset.iterations} (from preset)`;
    // Print sets the coarse-to-fine ladder too; the other presets leave the option's default.
    if (ladderInput) {
      const start = Number(preset.dataset.ladderStart);
      ladderInput.placeholder = start ? `${start} (from preset)` : ladderDefault;
    }
  }
  form.querySelectorAll("input[name=preset]").forEach((radio) => radio.addEventListener("change", updatePresetHints));
  updatePresetHints();

  // --- number fields: the browser's own range checks, shown next to the field ------------------

  const numberInputs = Array.from(form.querySelectorAll("input[type=number]"));
  function numberProblem(input) {
    const label = form.querySelector(`label[for="${input.id}"]`).textContent.trim();
    const v = input.validity;
    if (v.badInput) return `${label}: enter a number.`;
    if (v.rangeUnderflow) return `${label}: the smallest allowed value is ${input.min}.`;
    if (v.rangeOverflow) return `${label}: the largest allowed value is ${input.max}.`;
    if (v.stepMismatch) return `${label}: enter a whole number.`;
    return "";
  }
  numberInputs.forEach((input) => input.addEventListener("change", () => showError(input, numberProblem(input))));

  // --- submit --------------------------------------------------------------------------------------

  form.noValidate = true; // our messages next to each field replace the browser's bubbles

  function problems() {
    const found = [];
    const required = [
      [contentInput, "Choose a content image: the photo to paint (or try an example).", contentInput.files.length > 0],
      [styleInput, "Choose a style image or a painting: the picture whose style to copy.", styleChosen(styleInput)],
    ];
    for (const [input, message, chosen] of required) {
      if (!chosen) {
        showError(input, message);
        found.push(input);
      }
    }
    for (const input of [contentInput, styleInput, style2Input]) {
      const problem = fileProblems.get(input);
      if (problem) {
        showError(input, problem);
        found.push(input);
      }
    }
    for (const input of numberInputs) {
      const problem = numberProblem(input);
      showError(input, problem);
      if (problem) found.push(input);
    }
    return found;
  }

  form.addEventListener("submit", (event) => {
    const invalid = problems();
    if (invalid.length) {
      event.preventDefault();
      const first = invalid[0];
      const advanced = first.closest("details");
      if (advanced) advanced.open = true;
      submitStatus.textContent = "Please fix the highlighted field first.";
      first.focus();
      return;
    }
    sendExampleById();
    submitButton.disabled = true;
    submitButton.textContent = "Uploading…";
    submitStatus.textContent = "Uploading your images; the job page opens next.";
  });

  // Coming back with the Back button restores the page from cache with the button still disabled.
  window.addEventListener("pageshow", () => {
    if (currentExample && !contentInput.files.length) useExample(currentExample); // back from the job page
    submitButton.disabled = false;
    submitButton.textContent = "Start painting";
    submitStatus.textContent = "";
  });

  // --- "Try an example": an example photo of the library as the content ----------------------------
  //
  // The photo is put into the content's file input, so that its thumbnail, the checks and painting
  // the masks on it work as for a file of one's own. At submit the form sends it by id instead
  // (content_example), so the job credits it; without JavaScript the radio buttons do that alone.

  const exampleRadios = Array.from(form.querySelectorAll("input[data-example]")).filter((radio) => radio.value);
  const noExample = form.querySelector('input[data-example][value=""]');
  const tryButton = form.querySelector("[data-try-example]");
  const exampleCredit = form.querySelector("[data-example-credit]");
  let currentExample = null; // the radio of the example photo now in the content input
  let fillingExample = false;

  async function useExample(radio) {
    const file = await fetchFile(radio.dataset.image, `example-${radio.value}.png`);
    fillingExample = true;
    try {
      putFile(contentInput, file);
    } finally {
      fillingExample = false;
    }
    currentExample = radio;
    noExample.checked = true; // the file input holds it now; sendExampleById swaps at submit
    exampleCredit.textContent = "Example photo: " + radio.dataset.credit;
  }

  function sendExampleById() {
    if (!currentExample || !contentInput.files.length) return;
    currentExample.checked = true;
    contentInput.value = ""; // no change event: the thumbnail and the masks stay as they are
  }

  contentInput.addEventListener("change", () => {
    if (fillingExample) return;
    currentExample = null; // a file of one's own
    exampleCredit.textContent = "";
  });

  function showExampleProblem(error) {
    showError(contentInput, `The example photo could not be loaded (${error.message}); choose a file instead.`);
  }

  exampleRadios.forEach((radio) =>
    radio.addEventListener("change", () => {
      if (radio.checked) useExample(radio).catch(showExampleProblem);
    }),
  );

  if (tryButton && exampleRadios.length) {
    tryButton.hidden = false;
    tryButton.addEventListener("click", () => {
      const next = exampleRadios[(exampleRadios.indexOf(currentExample) + 1) % exampleRadios.length];
      useExample(next).catch(showExampleProblem);
    });
  }
  const renderedExample = exampleRadios.find((radio) => radio.checked);
  if (renderedExample) useExample(renderedExample).catch(showExampleProblem);

  // --- "use this style again": /?reuse=<job id> copies that job's style images and settings --------

  async function fetchFile(url, name) {
    const response = await fetch(url);
    if (!response.ok) throw new Error(`${url} answered ${response.status}`);
    const blob = await response.blob();
    return new File([blob], name, { type: blob.type || "image/png" });
  }

  function putFile(input, file) {
    const transfer = new DataTransfer();
    transfer.items.add(file);
    input.files = transfer.files;
    input.dispatchEvent(new Event("change", { bubbles: true }));
  }

  async function reuseJob(jobId) {
    const response = await fetch(`/api/jobs/${encodeURIComponent(jobId)}`);
    if (!response.ok) throw new Error(`that job is not available any more (${response.status})`);
    const job = await response.json();
    const inputs = [styleInput, style2Input];
    const count = Math.min(job.style_count, inputs.length);
    const credits = job.style_credits || [];
    for (let index = 0; index < count; index += 1) {
      // A library painting is chosen again by id (so the new job credits it too), if it is still offered.
      const painting = credits[index] && fieldOf(inputs[index]).querySelector(`input[data-painting][value="${credits[index].id}"]`);
      if (painting) {
        painting.checked = true;
        painting.dispatchEvent(new Event("change", { bubbles: true }));
        continue;
      }
      const file = await fetchFile(`/jobs/${job.id}/styles/${index}`, `style-${index + 1}-of-job-${job.id.slice(0, 8)}.png`);
      putFile(inputs[index], file);
    }
    const options = job.options || {};
    const preset = form.querySelector(`input[name=preset][value="${options.preset}"]`);
    if (preset) preset.checked = true;
    // Every Advanced-panel input carries data-option and is named after its option.
    for (const input of form.querySelectorAll("[data-option]")) {
      const value = options[input.name];
      if (input.type === "checkbox") input.checked = Boolean(value);
      else if (value !== null && value !== undefined) input.value = Array.isArray(value) ? value.join(",") : value;
    }
    if (Array.isArray(options.style_blend) && options.style_blend.length === 2) {
      const total = options.style_blend[0] + options.style_blend[1];
      blendInput.value = String(total > 0 ? options.style_blend[0] / total : 0.5);
    }
    updatePresetHints();
    updateBlend();
    return count;
  }

  const reuseId = new URLSearchParams(window.location.search).get("reuse");
  if (reuseId) {
    submitStatus.textContent = "Copying the style from your earlier job…";
    reuseJob(reuseId)
      .then((count) => {
        submitStatus.textContent = `Style image${count > 1 ? "s" : ""} and settings copied from job ${reuseId.slice(0, 8)}. Now choose a new photo.`;
        contentInput.focus();
      })
      .catch((error) => {
        submitStatus.textContent = `Could not copy the style: ${error.message}.`;
      });
  }
})();
