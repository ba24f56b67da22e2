// Progressive enhancement only: every page works without this file.
// "Copy" buttons next to read-only values (the device token), and select-all checkboxes.
document.querySelectorAll("button.copy[data-copy]").forEach((button) => {
  const field = document.getElementById(button.dataset.copy);
  if (!field || !navigator.clipboard) return;
  button.hidden = false;
  button.addEventListener("click", async () => {
    await navigator.clipboard.writeText(field.value);
    button.textContent = "Copied";
  });
});
document.querySelectorAll("input[data-select-all]").forEach((all) => {
  all.hidden = false;
  all.addEventListener("change", () => {
    document.querySelectorAll(`input[name="${all.dataset.selectAll}"]`).forEach((box) => {
      box.checked = all.checked;
    });
  });
});
// The laptop's header, live: the bar is fetched again every few seconds and put in place,
// so that "Syncing… 12,400 of 80,000 rows" becomes "Synced just now" without a reload.
document.querySelectorAll("[data-live]").forEach((bar) => {
  let current = bar;
  const refresh = async () => {
    try {
      const answer = await fetch(current.dataset.live, { credentials: "same-origin" });
      if (!answer.ok) return;
      const holder = document.createElement("div");
      holder.innerHTML = await answer.text();
      const fresh = holder.firstElementChild;
      if (fresh && fresh.outerHTML !== current.outerHTML) {
        current.replaceWith(fresh);
        current = fresh;
      }
    } catch (_) {
      // The copy itself is gone (closed): the page stays as it was.
    }
  };
  setInterval(refresh, 2000);
});
// Date-times are shown and read in the browser's time zone: the server learns it from a
// cookie. A form made before it knew (in the server's zone, as its `tz` says) is made
// again once, in this one; without this script the server's zone is used throughout.
(() => {
  let zone;
  try {
    zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  } catch (_) {
    return;
  }
  if (!zone) return;
  // IANA names ("America/Argentina/Buenos_Aires", "Etc/GMT+5") are valid cookie text.
  if (document.cookie.split("; ").includes(`offsync-tz=${zone}`)) return;
  document.cookie = `offsync-tz=${zone}; path=/; max-age=31536000; SameSite=Lax`;
  const tz = document.querySelector('input[name="tz"]');
  // Not a form sent back with messages (reloading would lose what was typed).
  const fresh = !document.querySelector(".error, .field-error");
  if (tz && tz.value !== zone && fresh) location.reload();
})();
