// "Notify me when done": a job that finishes while its tab is hidden raises a system notification
// (the Notification API), with the person's permission, asked for by the button and never on load.
// Clicking the notification brings the job's tab back. The tab's title shows the progress
// ("42% · Atelier") while the job runs (job.js), so a glance at the tab strip is enough too.

export function setUpNotifications(button, isFinished) {
  let wanted = false;
  const supported = "Notification" in window;

  function show(text, pressed) {
    button.textContent = text;
    button.setAttribute("aria-pressed", String(pressed));
  }

  function refresh() {
    if (!supported || isFinished() || Notification.permission === "denied") {
      button.hidden = true;
      return;
    }
    button.hidden = false;
    show(wanted ? "You will be notified" : "Notify me when done", wanted);
  }

  if (supported) {
    // Allowed before, for this site: the person chose notifications once already.
    wanted = Notification.permission === "granted";
    button.addEventListener("click", async () => {
      if (wanted) {
        wanted = false;
      } else {
        const permission = await Notification.requestPermission();
        wanted = permission === "granted";
      }
      refresh();
    });
  }
  refresh();

  return {
    // The job just finished: tell the person if they asked and are looking elsewhere.
    finished(status, label) {
      refresh();
      if (!wanted || !supported || Notification.permission !== "granted") return;
      if (document.visibilityState !== "hidden") return;
      const body = status.status === "failed" && status.error ? status.error : `Job ${status.id.slice(0, 8)}`;
      const notification = new Notification(`${label} · Atelier`, { body, tag: `atelier-${status.id}` });
      notification.addEventListener("click", () => {
        window.focus();
        notification.close();
      });
    },
  };
}
