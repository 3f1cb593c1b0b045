/* Bệnh Án: progressive enhancement for photo/PDF upload forms (form[data-upload]).
   Without this script the form is an ordinary multipart POST. With it: photos are
   downscaled in the browser (long side ≤ 2400 px, JPEG 0.85), sent with XMLHttpRequest
   and a progress bar, and retried with the same upload_key when the connection drops
   (the server files an upload once per key, so a retry never files twice).
   Server contract (request header X-Benhan-Upload: 1): 200 {"redirect": url};
   4xx {"errors": [...]}; network error, timeout, 408, 429, 502-504 → retried. */
(function () {
  'use strict';
  const MAX_SIDE = 2400;
  const QUALITY = 0.85;
  const DELAYS = [1, 2, 4, 8, 16]; // seconds before each retry
  const TIMEOUT = 10 * 60 * 1000;
  const SHRINK = ['image/jpeg', 'image/png', 'image/webp'];
  const RETRY = [0, 408, 429, 502, 503, 504];
  const TEXT = {
    preparing: 'Preparing page {i} of {n}\u2026',
    sending: 'Sending\u2026 {p}%',
    retrying: 'Connection lost; retrying ({n} of {max})\u2026',
    failed: 'The upload did not get through. Check the connection and press the button again; nothing will be filed twice.',
    error: 'The server refused the upload.',
    done: 'Filed.',
  };

  function text(form, key, vals) {
    const t = form.getAttribute('data-msg-' + key) || TEXT[key];
    return t.replace(/\{(\w+)\}/g, (m, k) => (vals && k in vals ? String(vals[k]) : m));
  }

  const sleep = (s) => new Promise((ok) => setTimeout(ok, s * 1000));

  // A smaller JPEG of an image file, or the file itself when that is not smaller or fails.
  async function shrink(file) {
    if (SHRINK.indexOf(file.type) < 0 || typeof createImageBitmap !== 'function') return file;
    let bmp = null;
    const canvas = document.createElement('canvas');
    try {
      // Throws on browsers that do not know 'from-image': the original is sent then,
      // rather than a re-encoded photo that lost its EXIF rotation.
      bmp = await createImageBitmap(file, { imageOrientation: 'from-image' });
      const scale = Math.min(1, MAX_SIDE / Math.max(bmp.width, bmp.height));
      canvas.width = Math.max(1, Math.round(bmp.width * scale));
      canvas.height = Math.max(1, Math.round(bmp.height * scale));
      const ctx = canvas.getContext('2d');
      ctx.fillStyle = '#fff'; // transparent PNG areas become white, not black
      ctx.fillRect(0, 0, canvas.width, canvas.height);
      ctx.imageSmoothingQuality = 'high';
      ctx.drawImage(bmp, 0, 0, canvas.width, canvas.height);
      const blob = await new Promise((ok) => canvas.toBlob(ok, 'image/jpeg', QUALITY));
      if (!blob || blob.size >= file.size) return file;
      const name = (file.name || 'page').replace(/\.[^./\\]*$/, '') + '.jpg';
      return new File([blob], name, { type: 'image/jpeg', lastModified: file.lastModified });
    } catch (e) {
      return file;
    } finally {
      if (bmp && bmp.close) bmp.close();
      canvas.width = canvas.height = 0; // free the pixels now, not at the next GC
    }
  }

  function post(url, data, onprogress) {
    return new Promise((done) => {
      const xhr = new XMLHttpRequest();
      xhr.open('POST', url);
      xhr.setRequestHeader('X-Benhan-Upload', '1');
      xhr.setRequestHeader('Accept', 'application/json');
      xhr.timeout = TIMEOUT;
      xhr.upload.onprogress = onprogress;
      xhr.onload = () => done(xhr);
      xhr.onerror = xhr.ontimeout = xhr.onabort = () => done(null);
      xhr.send(data);
    });
  }

  function json(xhr) {
    try { return JSON.parse(xhr.responseText); } catch (e) { return null; }
  }

  function enhance(form) {
    // One input or several (e.g. "take photos" with capture, and "choose files").
    const inputs = Array.prototype.slice.call(form.querySelectorAll('input[type=file][name=files]'));
    const bar = form.querySelector('progress[data-upload-progress]');
    const status = form.querySelector('[data-upload-status]');
    const errors = form.querySelector('[data-upload-errors]');
    const buttons = form.querySelectorAll('button:not([type]), button[type=submit], input[type=submit]');
    if (!inputs.length) return;
    let busy = false;
    let cache = { src: [], out: [] }; // processed files, reused when the same files are sent again

    const say = (t) => { if (status) status.textContent = t; };
    const lock = (on) => { busy = on; buttons.forEach((b) => { b.disabled = on; }); };
    const guard = (e) => { e.preventDefault(); e.returnValue = ''; };
    function showErrors(list) {
      if (!errors) return;
      errors.textContent = '';
      list.forEach((m) => {
        const li = document.createElement('li');
        li.textContent = m;
        errors.appendChild(li);
      });
    }
    function stop(message, list) {
      window.removeEventListener('beforeunload', guard);
      if (bar) bar.hidden = true;
      say(message);
      if (list) showErrors(list);
      lock(false);
    }

    async function prepare() {
      const src = inputs.reduce((all, el) => all.concat(Array.prototype.slice.call(el.files || [])), []);
      if (src.length === cache.src.length && src.every((f, i) => f === cache.src[i])) return cache.out;
      const out = [];
      for (let i = 0; i < src.length; i++) {
        say(text(form, 'preparing', { i: i + 1, n: src.length }));
        out.push(await shrink(src[i])); // one at a time: old phones have little memory
      }
      cache = { src: src, out: out };
      return out;
    }

    async function run(submitter) {
      lock(true);
      showErrors([]);
      window.addEventListener('beforeunload', guard);
      const files = await prepare();
      const data = new FormData(form);
      data.delete('files');
      if (submitter && submitter.name) data.append(submitter.name, submitter.value);
      files.forEach((f) => data.append('files', f, f.name));
      const url = form.getAttribute('action') || location.href;
      const progress = (e) => {
        if (!bar) return;
        if (e.lengthComputable && e.total) {
          bar.max = e.total;
          bar.value = e.loaded;
          say(text(form, 'sending', { p: Math.floor((100 * e.loaded) / e.total) }));
        } else {
          bar.removeAttribute('value');
        }
      };
      for (let attempt = 0; ; attempt++) {
        if (bar) { bar.hidden = false; bar.removeAttribute('value'); }
        say(text(form, 'sending', { p: 0 }));
        const xhr = await post(url, data, progress);
        const code = xhr ? xhr.status : 0;
        if (RETRY.indexOf(code) >= 0) {
          if (attempt >= DELAYS.length) return stop(text(form, 'failed'));
          say(text(form, 'retrying', { n: attempt + 1, max: DELAYS.length }));
          if (bar) bar.hidden = true;
          await sleep(DELAYS[attempt]);
          continue;
        }
        const body = json(xhr);
        if (code >= 200 && code < 300) {
          let to = body && body.redirect;
          // Not our JSON but a page we were redirected to (e.g. signed out): go there, as
          // the plain form would have.
          if (!to && !body && xhr.responseURL && xhr.responseURL !== new URL(url, document.baseURI).href) {
            to = xhr.responseURL;
          }
          if (!to) return stop('', [text(form, 'error')]);
          window.removeEventListener('beforeunload', guard);
          if (bar) bar.value = bar.max;
          say(text(form, 'done'));
          location.assign(to);
          return;
        }
        const list = body && Array.isArray(body.errors) && body.errors.length ? body.errors : [text(form, 'error')];
        return stop('', list.map(String));
      }
    }

    form.addEventListener('submit', (e) => {
      e.preventDefault();
      if (busy) return;
      run(e.submitter).catch(() => {
        // A browser this script does not suit: fall back to the plain form post.
        window.removeEventListener('beforeunload', guard);
        form.submit();
      });
    });
  }

  function init() {
    document.querySelectorAll('form[data-upload]').forEach(enhance);
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
