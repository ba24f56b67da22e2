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
