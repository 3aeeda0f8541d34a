using System.Net;
using System.Text.Encodings.Web;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using SafeTune.Onnx;

namespace SafeTune.Serving;

/// <summary>Where and how a <see cref="ChatServer"/> listens.</summary>
public sealed record ChatServerOptions
{
    /// <summary>The address to bind: loopback by default, so nothing outside the machine can reach the server.</summary>
    public IPAddress Address { get; init; } = IPAddress.Loopback;

    /// <summary>The TCP port; 0 picks a free one (see <see cref="ChatServer.Port"/>).</summary>
    public int Port { get; init; } = 8000;

    /// <summary>The largest request body accepted.</summary>
    public long MaxRequestBytes { get; init; } = 8 << 20;
}

/// <summary>
/// An OpenAI-compatible HTTP server over one <see cref="IChatBackend"/>, on ASP.NET Core's Kestrel:
/// <c>POST /v1/chat/completions</c> (non-streaming), <c>GET /v1/models</c>, <c>GET /v1/models/{id}</c> and
/// <c>GET /health</c>. Errors are OpenAI-style <c>{"error": {...}}</c> bodies: 400 for bad requests, 500 when the
/// backend fails. The server owns the backend.
/// </summary>
public sealed class ChatServer : IAsyncDisposable
{
    private static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
    private readonly IChatBackend _backend;
    private readonly DateTimeOffset _started = DateTimeOffset.UtcNow;
    private WebApplication _app = null!;
    private Uri _address = null!;
    private bool _disposed;

    private ChatServer(IChatBackend backend) => _backend = backend;

    /// <summary>The port the server listens on (the one picked, when 0 was asked for).</summary>
    public int Port => _address.Port;

    /// <summary>The base URL OpenAI clients take: <c>http://ADDRESS:PORT/v1</c>.</summary>
    public Uri BaseUrl => new(_address.GetLeftPart(UriPartial.Authority) + "/v1");

    /// <summary>The backend served.</summary>
    public IChatBackend Backend => _backend;

    /// <summary>Starts serving <paramref name="backend"/> (which the server then owns).</summary>
    /// <exception cref="IOException">The address or port cannot be bound (in use, not permitted).</exception>
    public static async Task<ChatServer> StartAsync(IChatBackend backend, ChatServerOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(backend);
        options ??= new ChatServerOptions();
        ArgumentOutOfRangeException.ThrowIfNegative(options.Port);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(options.Port, 65535);
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [], ApplicationName = typeof(ChatServer).Assembly.GetName().Name });
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Limits.MaxRequestBodySize = options.MaxRequestBytes;
            k.Listen(options.Address, options.Port);
        });
        var app = builder.Build();
        var server = new ChatServer(backend) { _app = app };
        app.MapGet("/health", (HttpContext c) => Write(c, 200, w => { w.WriteStartObject(); w.WriteString("status", "ok"); w.WriteEndObject(); }));
        app.MapGet("/v1/models", (HttpContext c) => Write(c, 200, w => ChatProtocol.WriteModels(w, backend.ModelId, server._started)));
        app.MapGet("/v1/models/{id}", (HttpContext c, string id) => id == backend.ModelId
            ? Write(c, 200, w => ChatProtocol.WriteModel(w, backend.ModelId, server._started))
            : Write(c, 404, w => ChatProtocol.WriteError(w, 404, $"model '{id}' is not served here; this server serves '{backend.ModelId}'.")));
        app.MapPost("/v1/chat/completions", (HttpContext c) => server.CompleteAsync(c));
        app.MapFallback((HttpContext c) => Write(c, 404, w => ChatProtocol.WriteError(w, 404, $"no route {c.Request.Method} {c.Request.Path}.")));
        try
        {
            await app.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException)
        {
            await app.DisposeAsync().ConfigureAwait(false);
            throw new IOException($"cannot listen on {options.Address}:{options.Port}: {e.Message}", e);
        }
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault()
            ?? throw new InvalidOperationException("the server reported no address.");
        server._address = new Uri(address);
        return server;
    }

    /// <summary>Completes when the server stops (after <see cref="StopAsync"/>, or when <paramref name="cancellationToken"/> is cancelled, which stops it).</summary>
    public Task WaitForShutdownAsync(CancellationToken cancellationToken = default) => _app.WaitForShutdownAsync(cancellationToken);

    /// <summary>Stops accepting requests and lets those in flight finish.</summary>
    public Task StopAsync(CancellationToken cancellationToken = default) => _app.StopAsync(cancellationToken);

    private async Task CompleteAsync(HttpContext c)
    {
        ChatCompletionRequest request;
        try
        {
            using var body = new MemoryStream();
            await c.Request.Body.CopyToAsync(body, c.RequestAborted).ConfigureAwait(false);
            request = ChatProtocol.ParseRequest(body.GetBuffer().AsSpan(0, (int)body.Length));
        }
        catch (ChatRequestException e)
        {
            await Write(c, e.Status, w => ChatProtocol.WriteError(w, e.Status, e.Message)).ConfigureAwait(false);
            return;
        }
        catch (BadHttpRequestException e)
        {
            await Write(c, e.StatusCode, w => ChatProtocol.WriteError(w, e.StatusCode, e.Message)).ConfigureAwait(false);
            return;
        }
        ChatCompletionResult result;
        try
        {
            result = await _backend.CompleteAsync(request, c.RequestAborted).ConfigureAwait(false);
        }
        catch (ChatRequestException e)
        {
            await Write(c, e.Status, w => ChatProtocol.WriteError(w, e.Status, e.Message)).ConfigureAwait(false);
            return;
        }
        catch (OperationCanceledException) when (c.RequestAborted.IsCancellationRequested)
        {
            return;
        }
        catch (Exception e) when (e is UserInputException or ArgumentException)
        {
            await Write(c, 400, w => ChatProtocol.WriteError(w, 400, e.Message)).ConfigureAwait(false);
            return;
        }
        catch (Exception e)
        {
            await Write(c, 500, w => ChatProtocol.WriteError(w, 500, $"the model failed: {e.GetType().Name}: {e.Message}")).ConfigureAwait(false);
            return;
        }
        await Write(c, 200, w => ChatProtocol.WriteCompletion(w, ChatProtocol.NewId(), _backend.ModelId, result, DateTimeOffset.UtcNow)).ConfigureAwait(false);
    }

    private static async Task Write(HttpContext c, int status, Action<Utf8JsonWriter> write)
    {
        var buffer = new MemoryStream();
        await using (var w = new Utf8JsonWriter(buffer, WriterOptions))
            write(w);
        c.Response.StatusCode = status;
        c.Response.ContentType = "application/json";
        c.Response.ContentLength = buffer.Length;
        await c.Response.Body.WriteAsync(buffer.GetBuffer().AsMemory(0, (int)buffer.Length), c.RequestAborted).ConfigureAwait(false);
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        if (_disposed) return;
        _disposed = true;
        try
        {
            await _app.StopAsync(CancellationToken.None).ConfigureAwait(false);
        }
        finally
        {
            await _app.DisposeAsync().ConfigureAwait(false);
            _backend.Dispose();
        }
    }
}
