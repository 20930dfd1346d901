<#
.SYNOPSIS
Copies this working tree to a k3s VM over ssh, leaving out target/,
node_modules/ and .git/.

.DESCRIPTION
Packs the tree with tar, copies the archive with scp and unpacks it on the VM
over ssh. tar, scp and ssh ship with Windows 10 (1803) and later and with
Windows 11. Files deleted here are not deleted on the VM. The Linux and macOS
equivalent is scripts/sync-to-vm.sh.

.PARAMETER VmHost
Host name or IP address of the VM.

.PARAMETER User
ssh user on the VM. Without it, ssh uses its configured or default user.

.PARAMETER Destination
Folder on the VM. A leading ~/ means the ssh user's home folder.

.PARAMETER Port
ssh port of the VM.

.EXAMPLE
.\scripts\sync-to-vm.ps1 -VmHost 192.168.56.10 -User ubuntu
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory = $true)]
    [string]$VmHost,

    [string]$User,

    [string]$Destination = '~/mini-code-runner/mini-code-runner',

    [ValidateRange(1, 65535)]
    [int]$Port = 22
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

# Quotes a string for the POSIX shell that runs the command on the VM.
function ConvertTo-ShellLiteral([string]$Value) {
    return "'" + $Value.Replace("'", "'\''") + "'"
}

# Runs a native command and stops when it exits with a non-zero code.
function Invoke-Checked([string]$Description, [scriptblock]$Command) {
    & $Command
    if ($LASTEXITCODE -ne 0) {
        throw "sync-to-vm: $Description failed with exit code $LASTEXITCODE"
    }
}

foreach ($tool in 'tar', 'scp', 'ssh') {
    if (-not (Get-Command $tool -ErrorAction SilentlyContinue)) {
        throw "sync-to-vm: $tool is not installed. Add the Windows OpenSSH Client feature (ssh, scp); tar ships with Windows 10 1803 and later."
    }
}

$sourceDir = Split-Path -Parent $PSScriptRoot
$target = if ($User) { "$User@$VmHost" } else { $VmHost }

# A remote path without a leading / is relative to the ssh user's home, so
# ~/ is dropped instead of relying on the VM's shell to expand it.
$remotePath = $Destination -replace '^~/', ''
if ([string]::IsNullOrWhiteSpace($remotePath) -or $remotePath -eq '~') {
    throw "sync-to-vm: invalid destination '$Destination'"
}

$archiveName = "code-runner-sync-$([guid]::NewGuid().ToString('N')).tar.gz"
$archive = Join-Path ([System.IO.Path]::GetTempPath()) $archiveName

try {
    Write-Host "sync-to-vm: packing $sourceDir"
    # Patterns without a slash match a folder of that name at any depth.
    Invoke-Checked 'tar' {
        tar -czf $archive --exclude=target --exclude=node_modules --exclude=.git -C $sourceDir .
    }

    Write-Host "sync-to-vm: copying to ${target}:$remotePath"
    Invoke-Checked 'scp' { scp -P $Port $archive "${target}:$archiveName" }

    $quotedPath = ConvertTo-ShellLiteral $remotePath
    $quotedArchive = ConvertTo-ShellLiteral $archiveName
    $unpack = "mkdir -p -- $quotedPath && tar -xzf $quotedArchive -C $quotedPath; status=`$?; rm -f -- $quotedArchive; exit `$status"
    Invoke-Checked 'unpacking on the VM' { ssh -p $Port $target $unpack }

    Write-Host "sync-to-vm: done"
}
finally {
    Remove-Item -Force -ErrorAction SilentlyContinue $archive
}
