// Viewer-request function for the S3 (site) behaviour: Hugo writes pretty URLs as
// /plans/index.html, and S3's REST endpoint (the only one OAC can use) has no index documents.
function handler(event) {
  var request = event.request;
  var uri = request.uri;
  if (uri.endsWith('/')) {
    request.uri = uri + 'index.html';
  } else if (!uri.split('/').pop().includes('.')) {
    request.uri = uri + '/index.html';
  }
  return request;
}
